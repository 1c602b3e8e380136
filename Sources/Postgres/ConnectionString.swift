/// Helpers for PostgreSQL connection strings (URLs `postgres://…` or `key=value` conninfo).
public enum ConnectionString {
    /// The string with every secret replaced by `***`, safe to print or log.
    ///
    /// Redacts, anywhere in `text` (a connection string, or a message quoting one):
    /// - the password of a URL's user information, `postgres://user:secret@host/db`, percent-encoded
    ///   or not, also when it holds an unencoded `@`, `/`, `?` or `#` (everything from the first `:`
    ///   after the user to the last `@` is taken as the password);
    /// - the value of every conninfo keyword or URL query parameter whose name contains `pass`,
    ///   `secret`, `token` or `key` (case-insensitive, percent-encoded or not): `password=…`,
    ///   `password = '…'`, `?sslpassword=…`, `&api_token=…`.
    ///
    /// It errs on the side of hiding: a URL with an `@` in its query string but no password may
    /// lose more than the secret.
    public static func redacted(_ text: String) -> String {
        redact(text).text
    }

    /// `message` (e.g. libpq's error text for `connectionString`) with every secret of
    /// `connectionString` removed, including the pieces libpq makes of a password with an unencoded
    /// `@` or `/` (it then reads part of it as the host or the port, and quotes that in its errors).
    public static func scrub(_ message: String, secretsOf connectionString: String) -> String {
        let secrets = redact(connectionString).secrets
        guard !secrets.isEmpty else { return redacted(message) }
        var pieces = Set<String>()
        for secret in secrets {
            pieces.insert(secret)
            for piece in secret.split(whereSeparator: { "@/:?#&=%".contains($0) }) { pieces.insert(String(piece)) }
        }
        // Quoted values (libpq quotes what it parsed) that hold any piece of a secret go entirely.
        var output = ""
        var rest = Substring(message)
        while let open = rest.firstIndex(of: "\"") {
            output += rest[...open]
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "\"") else {
                rest = rest[afterOpen...]
                break
            }
            let quoted = rest[afterOpen..<close]
            output += pieces.contains { quoted.contains($0) } ? "***" : String(quoted)
            output += "\""
            rest = rest[rest.index(after: close)...]
        }
        output += rest
        // Elsewhere, every piece long enough not to hit ordinary words (libpq never prints a password
        // itself; what it echoes it quotes).
        for piece in pieces.sorted(by: { $0.count > $1.count }) where piece.count >= 4 {
            output = output.replacingOccurrences(of: piece, with: "***")
        }
        return redacted(output)
    }

    /// Whether a conninfo keyword or query parameter name denotes a secret.
    static func isSecretName(_ name: Substring) -> Bool {
        let lowered = (percentDecoded(name) ?? String(name)).lowercased()
        return ["pass", "secret", "token", "key"].contains { lowered.contains($0) }
    }

    /// The redacted text and the secret values it removed (raw and percent-decoded).
    static func redact(_ text: String) -> (text: String, secrets: [String]) {
        var secrets: [String] = []
        func keep(_ secret: Substring) {
            guard !secret.isEmpty else { return }
            secrets.append(String(secret))
            if let decoded = percentDecoded(secret), decoded != String(secret) { secrets.append(decoded) }
        }
        let withoutUserinfo = redactUserinfo(text, keep)
        let result = redactKeyValues(withoutUserinfo, keep)
        return (result, secrets)
    }

    /// Replaces the password of every `scheme://user:password@` in `text`.
    private static func redactUserinfo(_ text: String, _ keep: (Substring) -> Void) -> String {
        var output = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            output += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            // The URL ends at white space (it may sit inside a longer message).
            let end = rest.firstIndex(where: \.isWhitespace) ?? rest.endIndex
            let url = rest[..<end]
            let authorityEnd = url.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
            // The usual case: the authority holds the `@`; else a password with an unencoded `/`,
            // `?` or `#` put the `@` further on.
            let at = url[..<authorityEnd].lastIndex(of: "@") ?? url.lastIndex(of: "@")
            if let at, let colon = url[..<at].firstIndex(of: ":"), url[..<colon].allSatisfy({ $0 != "/" && $0 != "?" && $0 != "#" }) {
                let password = url[url.index(after: colon)..<at]
                keep(password)
                output += url[...colon]
                output += "***"
                rest = rest[at...]
            }
        }
        return output + rest
    }

    /// Replaces the value of every `name=value` / `name = 'value'` (conninfo) and `name=value` (URL
    /// query) whose name denotes a secret.
    private static func redactKeyValues(_ text: String, _ keep: (Substring) -> Void) -> String {
        func isNameCharacter(_ character: Character) -> Bool {
            character.isLetter || character.isNumber || character == "_" || character == "-" || character == "%" || character == "."
        }
        var output = ""
        var index = text.startIndex
        var copied = text.startIndex
        while index < text.endIndex {
            guard text[index] == "=" else {
                index = text.index(after: index)
                continue
            }
            // The name before `=` (white space allowed in between, as conninfo allows).
            var nameEnd = index
            while nameEnd > text.startIndex, text[text.index(before: nameEnd)] == " " || text[text.index(before: nameEnd)] == "\t" {
                nameEnd = text.index(before: nameEnd)
            }
            var nameStart = nameEnd
            while nameStart > text.startIndex, isNameCharacter(text[text.index(before: nameStart)]) {
                nameStart = text.index(before: nameStart)
            }
            var valueStart = text.index(after: index)
            guard nameStart < nameEnd, isSecretName(text[nameStart..<nameEnd]) else {
                index = valueStart
                continue
            }
            while valueStart < text.endIndex, text[valueStart] == " " || text[valueStart] == "\t" {
                valueStart = text.index(after: valueStart)
            }
            var valueEnd = valueStart
            if valueStart < text.endIndex, text[valueStart] == "'" {
                // A quoted conninfo value: up to the closing quote, `\'` and `\\` escaped.
                let contentStart = text.index(after: valueStart)
                valueEnd = contentStart
                while valueEnd < text.endIndex, text[valueEnd] != "'" {
                    if text[valueEnd] == "\\" { valueEnd = text.index(after: valueEnd) }
                    if valueEnd < text.endIndex { valueEnd = text.index(after: valueEnd) }
                }
                keep(text[contentStart..<valueEnd])
                if valueEnd < text.endIndex { valueEnd = text.index(after: valueEnd) }
            } else {
                // In a URL's query string the value ends at `&` or `#`; in conninfo only at white space.
                let inQuery = nameStart > text.startIndex && "?&".contains(text[text.index(before: nameStart)])
                while valueEnd < text.endIndex, !text[valueEnd].isWhitespace, !(inQuery && (text[valueEnd] == "&" || text[valueEnd] == "#")) {
                    valueEnd = text.index(after: valueEnd)
                }
                keep(text[valueStart..<valueEnd])
            }
            output += text[copied..<index]
            output += "=***"
            copied = valueEnd
            index = valueEnd
        }
        return output + text[copied...]
    }

    /// `%XX` sequences decoded, or `nil` when `text` has none or they do not form UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return nil }
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"),
                let high = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), high < utf8.endIndex,
                let low = utf8.index(index, offsetBy: 2, limitedBy: utf8.endIndex), low < utf8.endIndex,
                let value = UInt8(String(decoding: [utf8[high], utf8[low]], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index = utf8.index(after: low)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
