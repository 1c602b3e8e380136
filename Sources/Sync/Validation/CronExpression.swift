import Foundation

/// A cron schedule of five fields — minute, hour, day of month, month, day of week — as in
/// crontab(5): `*`, values, ranges `a-b`, steps `*/n` and `a-b/n` (and `a/n`: from a to the end),
/// lists `a,b-c`, month names `JAN`–`DEC` and day names `SUN`–`SAT` (any case; day 7 is Sunday too),
/// and the macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`.
///
/// When both the day of month and the day of week are restricted (neither field starts with `*`), a
/// day matches if either does (`0 0 13 * FRI`: every 13th and every Friday), as cron does.
///
/// Times are wall-clock times in a time zone. A time that a daylight-saving change skips (02:30 on
/// the spring-forward night in Europe) fires once at the first instant after the gap; a time that
/// occurs twice (01:30 on the fall-back night) fires once, at its first occurrence.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as written.
    public let source: String
    let minutes: [Int]
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 = Sunday … 6 = Saturday.
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    public var description: String { source }

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    private static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    /// Parses an expression.
    ///
    /// - Throws: ``SyncError`` `configuration` naming the field and what is wrong with it.
    public init(parsing text: String) throws(SyncError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw SyncError(
                .configuration,
                "'\(text)' is not a cron expression: it needs five fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\") or a macro such as @daily")
        }
        source = trimmed
        minutes = try Self.field(fields[0], name: "minute", range: 0...59).sorted()
        hours = try Self.field(fields[1], name: "hour", range: 0...23).sorted()
        daysOfMonth = try Self.field(fields[2], name: "day of month", range: 1...31)
        months = try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames, firstName: 1)
        daysOfWeek = Set(try Self.field(fields[4], name: "day of week", range: 0...7, names: Self.dayNames, firstName: 0).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
    }

    private static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String] = [], firstName: Int = 0) throws(SyncError) -> Set<Int> {
        func value(_ token: Substring) throws(SyncError) -> Int {
            if let number = Int(token) {
                guard range.contains(number) else {
                    throw SyncError(.configuration, "cron \(name) \(number) is out of range \(range.lowerBound)-\(range.upperBound) in '\(text)'")
                }
                return number
            }
            if let index = names.firstIndex(of: token.uppercased()) { return index + firstName }
            throw SyncError(
                .configuration,
                "cron \(name) '\(token)' is not a number\(names.isEmpty ? "" : " or a name (\(names.joined(separator: ", ")))") in '\(text)'")
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let base = parts.first, !base.isEmpty else {
                throw SyncError(.configuration, "cron \(name) '\(item)' is malformed in '\(text)'")
            }
            var step = 1
            if parts.count == 2 {
                guard let parsed = Int(parts[1]), parsed > 0 else {
                    throw SyncError(.configuration, "cron \(name) step '\(parts[1])' must be a positive number in '\(text)'")
                }
                step = parsed
            }
            var low: Int
            var high: Int
            if base == "*" {
                low = range.lowerBound
                high = range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else {
                    throw SyncError(.configuration, "cron \(name) range '\(base)' runs backwards in '\(text)'")
                }
            } else {
                low = try value(base)
                // `a/n` runs from a to the end of the field.
                high = parts.count == 2 ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// Whether the schedule fires on a day.
    func matches(day: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    /// The first time after `date` (strictly) at which the schedule fires in `timeZone`; `nil` when it
    /// never fires in the next nine years (e.g. `0 0 30 2 *`).
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        let start = date.timeIntervalSince1970
        let localStart = Int64(start.rounded(.down)) + Int64(timeZone.secondsFromGMT(for: date))
        // A day early: a time in the gap of a daylight-saving change maps to the day after.
        var day = Self.floorDivide(localStart, 86_400) - 1
        let lastDay = day + 9 * 366
        while day <= lastDay {
            let (_, month, dayOfMonth) = Self.civil(day)
            if matches(day: dayOfMonth, month: month, weekday: Int(Self.floorModulo(day + 4, 7))) {
                for hour in hours {
                    for minute in minutes {
                        let wall = day * 86_400 + Int64(hour * 3_600 + minute * 60)
                        let instant = Self.instant(wall: wall, in: timeZone)
                        if Double(instant) > start { return Date(timeIntervalSince1970: Double(instant)) }
                    }
                }
            }
            day += 1
        }
        return nil
    }

    /// The instant (Unix seconds) of a wall-clock time (seconds since 1970-01-01 00:00 on the wall):
    /// its first occurrence, or for a time skipped by a daylight-saving change, the end of the gap.
    static func instant(wall: Int64, in timeZone: TimeZone) -> Int64 {
        func offset(_ instant: Int64) -> Int64 { Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant)))) }
        let before = offset(wall - 86_400)
        let after = offset(wall + 86_400)
        let candidates = Set([wall - before, wall - after]).filter { $0 + offset($0) == wall }
        if let first = candidates.min() { return first }
        // Skipped: the first instant with the later offset, between the two readings.
        var low = min(wall - before, wall - after)
        var high = max(wall - before, wall - after)
        while low < high {
            let middle = low + (high - low) / 2
            if offset(middle) == after { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// Year, month, day of the day `days` after 1970-01-01 (proleptic Gregorian calendar).
    static func civil(_ days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    private static func floorModulo(_ a: Int64, _ b: Int64) -> Int64 {
        let remainder = a % b
        return remainder < 0 ? remainder + b : remainder
    }
}
