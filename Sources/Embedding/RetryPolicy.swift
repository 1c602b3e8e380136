import Foundation

/// How long to wait before a failed request is sent again: exponential backoff with full jitter,
/// unless the provider said how long (`Retry-After`, `retry-after-ms`, `x-ratelimit-reset-*`).
struct RetryPolicy: Sendable, Equatable {
    /// First wait's upper bound; doubled with each further failure.
    var initialBackoff: Duration
    /// Upper bound of every wait chosen here.
    var maxBackoff: Duration
    /// Failed attempts after which a request gives up; `nil`: never (until cancelled).
    var maxAttempts: Int?
    /// Longest wait a provider's header may ask for before it is taken as a mistake and capped.
    var longestProviderWait: Duration = .seconds(3_600)

    /// The wait after the `failures`-th failure in a row of one request (1 for the first): a
    /// uniformly random duration between zero and `min(maxBackoff, initialBackoff · 2^(failures-1))`
    /// ("full jitter", so that requests that failed together do not come back together).
    func backoff(after failures: Int) -> Duration {
        let initial = max(initialBackoff, .milliseconds(1)).seconds
        let doublings = Double(min(max(failures - 1, 0), 60))
        let ceiling = min(max(maxBackoff.seconds, initial), initial * pow(2, doublings))
        let seconds = Double.random(in: 0...ceiling)
        return .seconds(seconds)
    }

    /// Whether a request that has failed `failures` times may be sent again.
    func allowsAnother(after failures: Int) -> Bool {
        guard let maxAttempts else { return true }
        return failures < maxAttempts
    }

    /// The wait the provider asked for in its answer headers, if any, at most
    /// ``longestProviderWait``. `header` looks a header up by lowercase name.
    func providerWait(_ header: (String) -> String?, now: Date = Date()) -> Duration? {
        var wait: Duration?
        if let text = header("retry-after-ms"), let milliseconds = Double(text.trimmingCharacters(in: .whitespaces)), milliseconds >= 0 {
            wait = .milliseconds(milliseconds)
        } else if let text = header("retry-after") {
            wait = Self.retryAfter(text, now: now)
        } else {
            // OpenAI's reset headers: the time until the exhausted limit has room again.
            var resets: [Duration] = []
            for kind in ["requests", "tokens"] where header("x-ratelimit-remaining-\(kind)")?.trimmingCharacters(in: .whitespaces) == "0" {
                if let reset = header("x-ratelimit-reset-\(kind)").flatMap(Self.goDuration) { resets.append(reset) }
            }
            wait = resets.max()
        }
        return wait.map { min($0, longestProviderWait) }
    }

    /// `Retry-After`: delay-seconds (decimals accepted) or an HTTP date.
    static func retryAfter(_ text: String, now: Date = Date()) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: trimmed) {
                return .seconds(max(0, date.timeIntervalSince(now)))
            }
        }
        return nil
    }

    /// A Go duration as OpenAI sends it in `x-ratelimit-reset-*`: `1s`, `6m0s`, `20ms`, `1h2m3.5s`.
    static func goDuration(_ text: String) -> Duration? {
        var total = 0.0
        var number = ""
        var characters = Array(text.trimmingCharacters(in: .whitespaces))
        guard !characters.isEmpty else { return nil }
        characters.append(" ")
        var index = 0
        var parsedAny = false
        while index < characters.count - 1 {
            let character = characters[index]
            if character.isNumber || character == "." {
                number.append(character)
                index += 1
                continue
            }
            var unit = String(character)
            if (character == "m" || character == "u" || character == "µ" || character == "n"), characters[index + 1] == "s" {
                unit.append("s")
                index += 1
            }
            index += 1
            guard let value = Double(number) else { return nil }
            number = ""
            let scale: Double
            switch unit {
            case "h": scale = 3_600
            case "m": scale = 60
            case "s": scale = 1
            case "ms": scale = 1e-3
            case "us", "µs": scale = 1e-6
            case "ns": scale = 1e-9
            default: return nil
            }
            total += value * scale
            parsedAny = true
        }
        guard number.isEmpty, parsedAny else { return nil }
        return .seconds(total)
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
