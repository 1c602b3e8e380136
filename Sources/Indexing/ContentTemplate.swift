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
    /// For templates made only of text and plain variables (the common case): the pieces to
    /// concatenate, which renders several times faster than the general Mustache renderer.
    private let segments: [Segment]?

    enum Segment: Sendable, Equatable {
        case text(String)
        case variable(String)
    }

    public init(_ source: String) throws(IndexingError) {
        self.source = source
        do {
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + source)
        } catch {
            throw IndexingError(.template, "the template does not parse: \(error)", underlying: error)
        }
        columns = Self.referencedNames(source)
        segments = Self.simpleSegments(source)
    }

    /// Splits a template of text and `{{name}}` / `{{{name}}}` / `{{& name}}` tags; `nil` when it
    /// uses anything else (sections, partials, comments, transforms, dotted names, delimiters).
    static func simpleSegments(_ source: String) -> [Segment]? {
        var segments: [Segment] = []
        var remainder = Substring(source)
        while let open = remainder.range(of: "{{") {
            if open.lowerBound > remainder.startIndex { segments.append(.text(String(remainder[..<open.lowerBound]))) }
            var tagStart = open.upperBound
            var closing = "}}"
            if remainder[tagStart...].hasPrefix("{") {
                tagStart = remainder.index(after: tagStart)
                closing = "}}}"
            }
            guard let close = remainder[tagStart...].range(of: closing) else { return nil }
            var tag = remainder[tagStart..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if closing == "}}", tag.hasPrefix("&") { tag = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces) }
            guard !tag.isEmpty, tag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
            // A standalone tag on its own line behaves the same in both renderers only for variables,
            // which never strip surrounding whitespace: nothing more to check.
            segments.append(.variable(tag))
            remainder = remainder[close.upperBound...]
        }
        if !remainder.isEmpty { segments.append(.text(String(remainder))) }
        return segments
    }

    /// Renders the row. `values` holds text forms (`nil` for NULL); `booleans` names bool columns.
    public func render(_ values: [String: String?], booleans: Set<String> = []) -> String {
        if let segments {
            var output = ""
            for segment in segments {
                switch segment {
                case .text(let text): output += text
                case .variable(let name):
                    if let value = values[name] ?? nil {
                        output += booleans.contains(name) ? ((value == "t" || value == "true") ? "true" : "false") : value
                    }
                }
            }
            return output
        }
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
