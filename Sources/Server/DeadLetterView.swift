import Indexing

/// A dead letter as the API shows it.
struct DeadLetterView: Codable, Sendable {
    var entity: String
    var id: String
    var stage: String
    var error: String
    var lsn: String
    var attempts: Int
    var firstFailedAt: Double
    var lastFailedAt: Double

    init(_ letter: DeadLetter) {
        entity = letter.entity
        id = letter.id
        stage = letter.stage
        error = letter.error
        lsn = letter.lsn.description
        attempts = letter.attempts
        firstFailedAt = letter.firstFailedAt
        lastFailedAt = letter.lastFailedAt
    }
}
