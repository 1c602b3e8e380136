import Mustache

/// A Mustache template over a row's columns that renders plain text.
///
/// Rendering is text, not HTML: `&`, `<` and quotes reach the embedder as they are in the row.
/// NULL columns render as empty and are false in sections; boolean columns are real booleans.
public struct ContentTemplate: Sendable {
    public let source: String
    /// Column names the template reads (the first segment of dotted names), in order of appearance.
    public let columns: [String]
    private let template: MustacheTemplate

    public init(_ source: String) throws(IndexingError) {
        self.source = source
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + source)
        } catch {
            throw IndexingError(.template, "the template does not parse: \(error)", underlying: error)
        }
        columns = Self.referencedNames(source)
    }

    /// Renders the row. `values` holds text forms (`nil` for NULL); `booleans` names bool columns.
    public func render(_ values: [String: String?], booleans: Set<String> = []) -> String {
        var context: [String: Any] = [:]
        for (name, value) in values {
            guard let value else { continue }
            if booleans.contains(name) {
                context[name] = value == "t" || value == "true"
            } else {
                context[name] = value
            }
        }
        return template.render(context)
    }

    /// Names used by variable and section tags: `{{name}}`, `{{{name}}}`, `{{&name}}`,
    /// `{{#name}}`, `{{^name}}`, and `{{transform(name)}}`. Comments, partials, closings, pragmas and
    /// the implicit iterator `.` are skipped.
    static func referencedNames(_ source: String) -> [String] {
        var names: [String] = []
        var remainder = Substring(source)
        while let open = remainder.range(of: "{{") {
            var tagStart = open.upperBound
            var closing = "}}"
            if remainder[tagStart...].hasPrefix("{") {
                tagStart = remainder.index(after: tagStart)
                closing = "}}}"
            }
            guard let close = remainder[tagStart...].range(of: closing) else { break }
            var tag = remainder[tagStart..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            remainder = remainder[close.upperBound...]
            if let sigil = tag.first, "#^&".contains(sigil) {
                tag = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces)
            } else if let sigil = tag.first, "!/>%=<$".contains(sigil) {
                continue
            }
            // transform(name) → name
            if let parenthesis = tag.firstIndex(of: "("), tag.hasSuffix(")") {
                tag = String(tag[tag.index(after: parenthesis)..<tag.index(before: tag.endIndex)])
            }
            guard !tag.isEmpty, tag != "." else { continue }
            let name = String(tag.split(separator: ".", maxSplits: 1).first ?? Substring(tag))
            if !names.contains(name) { names.append(name) }
        }
        return names
    }
}
