import Foundation

/// Removes an API key from text before it is logged or put into an error: the key itself, any
/// word holding a part of it (a provider's "Incorrect API key provided: sk-ab***wxyz" echoes its
/// start and end), and any masked key (a word with `***`).
struct SecretRedaction: Sendable {
    static let marker = "[redacted]"
    private let secret: String?

    init(_ secret: String?) {
        self.secret = secret.flatMap { $0.isEmpty ? nil : $0 }
    }

    func apply(_ text: String) -> String {
        var text = text
        if let secret, text.contains(secret) { text = text.replacingOccurrences(of: secret, with: Self.marker) }
        var result = ""
        result.reserveCapacity(text.count)
        var word = ""
        func flush() {
            result += isSecretLike(word) ? Self.marker : word
            word = ""
        }
        for character in text {
            if character.isWhitespace || "\"'`,;()[]{}<>".contains(character) {
                flush()
                result.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return result
    }

    private func isSecretLike(_ word: String) -> Bool {
        guard word.count >= 4, word != Self.marker else { return false }
        if word.contains("***") { return true }
        guard let secret, secret.count >= 8 else { return false }
        let bare = word.trimming([".", ":", "!", "?"])
        if bare.count >= 6, bare.hasPrefix(secret.prefix(6)) { return true }
        if bare.count >= 8, secret.contains(bare) { return true }
        return false
    }
}

extension String {
    fileprivate func trimming(_ set: Set<Character>) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
