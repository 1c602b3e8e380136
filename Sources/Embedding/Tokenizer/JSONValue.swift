/// A parsed JSON document: what `tokenizer.json` and a safetensors header are read into.
///
/// The parser works on UTF-8 bytes in one pass (a 2 MB `tokenizer.json` parses in milliseconds),
/// nests at most ``maximumDepth`` levels, and reports malformed input as an ``EmbeddingError`` with
/// the byte offset, never by crashing.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in file order, keys byte for byte: Swift's `String` equality is Unicode canonical
    /// equivalence, under which distinct vocabulary entries (`ή` U+03AE and U+1F75) would collide.
    case object([Member])

    /// One member of an object.
    struct Member: Sendable, Equatable {
        var key: String
        var value: JSONValue
    }

    /// Deepest nesting accepted (a hostile file cannot exhaust the stack).
    static let maximumDepth = 256

    /// The members of an object (in file order), or `nil`.
    var members: [Member]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The object's members by key (the last of duplicate keys wins), or `nil` when this is not an
    /// object. For the small objects of a file's structure, not for vocabularies (see ``members``).
    var object: [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        var result: [String: JSONValue] = [:]
        for member in members { result[member.key] = member.value }
        return result
    }

    /// The elements of an array, or `nil`.
    var array: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The text of a string, or `nil`.
    var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The value of a boolean, or `nil`.
    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value of a number that is an integer representable as `Int`, or `nil`.
    var integer: Int? {
        guard case .number(let value) = self, value == value.rounded(), abs(value) < 9.0e15 else { return nil }
        return Int(value)
    }

    /// Whether this is `null`.
    var isNull: Bool { self == .null }

    /// A short name of the value's type, for error messages.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
