import Foundation
import Testing

@testable import Sync

@Suite struct CronTests {
    let utc = TimeZone(identifier: "UTC")!
    let berlin = TimeZone(identifier: "Europe/Berlin")!
    let newYork = TimeZone(identifier: "America/New_York")!

    /// `2025-03-30T01:00:00Z` style instants.
    func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)!
    }

    func next(_ expression: String, after: String, in zone: TimeZone) throws -> Date? {
        try CronExpression(parsing: expression).next(after: date(after), in: zone)
    }

    func message(_ expression: String) -> String {
        do {
            _ = try CronExpression(parsing: expression)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func fieldsListsRangesStepsAndNames() throws {
        let cron = try CronExpression(parsing: "*/15 9-17/4 1,15 JAN-mar,Dec mon-FRI")
        #expect(cron.minutes == [0, 15, 30, 45])
        #expect(cron.hours == [9, 13, 17])
        #expect(cron.daysOfMonth == [1, 15])
        #expect(cron.months == [1, 2, 3, 12])
        #expect(cron.daysOfWeek == [1, 2, 3, 4, 5])
        #expect(try CronExpression(parsing: "5/20 * * * *").minutes == [5, 25, 45])
        #expect(try CronExpression(parsing: "0 0 * * 7").daysOfWeek == [0], "7 is Sunday too")
        #expect(try CronExpression(parsing: "0 0 * * sun,SAT").daysOfWeek == [0, 6])
        #expect(try CronExpression(parsing: "@daily") == CronExpression(parsing: "@daily"))
        #expect(try CronExpression(parsing: "@hourly").minutes == [0])
        #expect(try CronExpression(parsing: "@weekly").daysOfWeek == [0])
        #expect(try CronExpression(parsing: "  0 2 * * *  ").description == "0 2 * * *")
    }

    @Test func errorsNameTheFieldAndTheProblem() {
        #expect(message("0 2 * *").contains("five fields"))
        #expect(message("61 * * * *").contains("minute 61 is out of range 0-59"))
        #expect(message("0 24 * * *").contains("hour 24 is out of range 0-23"))
        #expect(message("0 0 0 * *").contains("day of month 0 is out of range 1-31"))
        #expect(message("5-1 * * * *").contains("runs backwards"))
        #expect(message("*/0 * * * *").contains("step '0' must be a positive number"))
        #expect(message("0 0 * FOO *").contains("month 'FOO' is not a number or a name"))
        #expect(message("0 0 * * 8").contains("day of week 8 is out of range 0-7"))
        #expect(message("0 0 ,1 * *").contains("malformed"))
        #expect(message("@sometimes").contains("five fields"))
    }

    @Test func dailyAtTwo() throws {
        #expect(try next("0 2 * * *", after: "2025-06-01T00:00:00Z", in: utc) == date("2025-06-01T02:00:00Z"))
        #expect(try next("0 2 * * *", after: "2025-06-01T02:00:00Z", in: utc) == date("2025-06-02T02:00:00Z"), "strictly after")
        #expect(try next("0 2 * * *", after: "2025-12-31T03:00:00Z", in: utc) == date("2026-01-01T02:00:00Z"))
        #expect(try next("0 2 * * *", after: "2025-06-01T00:00:00Z", in: berlin) == date("2025-06-01T00:00:00Z").addingTimeInterval(86_400), "02:00 CEST is 00:00 UTC")
        #expect(try next("0 2 * * *", after: "2025-05-31T23:59:00Z", in: berlin) == date("2025-06-01T00:00:00Z"))
    }

    @Test func springForwardRunsASkippedTimeOnceAtTheEndOfTheGap() throws {
        // Europe/Berlin, 2025-03-30: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist.
        #expect(try next("30 2 * * *", after: "2025-03-29T12:00:00Z", in: berlin) == date("2025-03-30T01:00:00Z"))
        #expect(try next("30 2 * * *", after: "2025-03-30T01:00:00Z", in: berlin) == date("2025-03-31T00:30:00Z"))
        // Every quarter hour through the gap: 01:45 CET, then 03:00 CEST once, then 03:15 CEST.
        #expect(try next("*/15 * * * *", after: "2025-03-30T00:45:00Z", in: berlin) == date("2025-03-30T01:00:00Z"))
        #expect(try next("*/15 * * * *", after: "2025-03-30T01:00:00Z", in: berlin) == date("2025-03-30T01:15:00Z"))
        // America/New_York, 2025-03-09: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        #expect(try next("30 2 * * *", after: "2025-03-08T12:00:00Z", in: newYork) == date("2025-03-09T07:00:00Z"))
    }

    @Test func fallBackRunsARepeatedTimeOnceAtItsFirstOccurrence() throws {
        // Europe/Berlin, 2025-10-26: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 occurs twice.
        #expect(try next("30 2 * * *", after: "2025-10-25T12:00:00Z", in: berlin) == date("2025-10-26T00:30:00Z"))
        #expect(try next("30 2 * * *", after: "2025-10-26T00:30:00Z", in: berlin) == date("2025-10-27T01:30:00Z"), "not again at 01:30 UTC")
        // America/New_York, 2025-11-02: 01:30 EDT (05:30 UTC) and 01:30 EST (06:30 UTC).
        #expect(try next("30 1 * * *", after: "2025-11-01T12:00:00Z", in: newYork) == date("2025-11-02T05:30:00Z"))
        #expect(try next("30 1 * * *", after: "2025-11-02T05:30:00Z", in: newYork) == date("2025-11-03T06:30:00Z"))
        // Hourly through the repeated hour: 01:00 EDT, then 02:00 EST (the wall clock's next hour).
        #expect(try next("0 * * * *", after: "2025-11-02T05:00:00Z", in: newYork) == date("2025-11-02T07:00:00Z"))
    }

    @Test func february29() throws {
        #expect(try next("0 0 29 2 *", after: "2025-01-01T00:00:00Z", in: utc) == date("2028-02-29T00:00:00Z"))
        #expect(try next("0 0 29 2 *", after: "2028-02-29T00:00:00Z", in: utc) == date("2032-02-29T00:00:00Z"))
        #expect(try next("0 12 29 FEB *", after: "2096-03-01T00:00:00Z", in: utc) == date("2104-02-29T12:00:00Z"), "2100 is no leap year")
        #expect(try next("0 0 30 2 *", after: "2025-01-01T00:00:00Z", in: utc) == nil, "never")
        #expect(try next("0 0 31 4,6,9,11 *", after: "2025-01-01T00:00:00Z", in: utc) == nil, "those months have 30 days")
    }

    @Test func dayOfMonthAndDayOfWeekBothSetMatchEither() throws {
        // 2025-06-01 is a Sunday; Friday the 6th comes before the 15th.
        #expect(try next("0 0 15 * FRI", after: "2025-06-01T00:00:00Z", in: utc) == date("2025-06-06T00:00:00Z"))
        #expect(try next("0 0 15 * FRI", after: "2025-06-13T00:00:00Z", in: utc) == date("2025-06-15T00:00:00Z"), "the 15th is a Sunday")
        // Only one restricted: only that one counts.
        #expect(try next("0 0 * * FRI", after: "2025-06-13T00:00:00Z", in: utc) == date("2025-06-20T00:00:00Z"))
        #expect(try next("0 0 15 * *", after: "2025-06-01T00:00:00Z", in: utc) == date("2025-06-15T00:00:00Z"))
        // A star with a step still counts as unrestricted for this rule.
        #expect(try next("0 0 */10 * FRI", after: "2025-06-01T00:00:00Z", in: utc) == date("2025-06-06T00:00:00Z"))
        #expect(try next("0 0 15 * */2", after: "2025-06-01T00:00:00Z", in: utc) == date("2025-06-15T00:00:00Z"))
    }

    @Test func civilDates() {
        #expect(CronExpression.civil(0) == (1970, 1, 1))
        #expect(CronExpression.civil(-1) == (1969, 12, 31))
        #expect(CronExpression.civil(19_783) == (2024, 3, 1))
        #expect(CronExpression.civil(19_782) == (2024, 2, 29))
    }
}
