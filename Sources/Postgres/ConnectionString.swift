/// Helpers for PostgreSQL connection strings (URLs `postgres://…` or `key=value` conninfo).
public enum ConnectionString {
    /// The string with any password replaced by `***`, safe to print or log.
    ///
    /// Handles `postgres://user:secret@host/db`, `password=secret` in conninfo, and
    /// `?password=secret` in URL query strings.
    public static func redacted(_ text: String) -> String {
        var result = text
        // URL userinfo: scheme://user:password@host
        if let schemeEnd = result.range(of: "://") {
            let rest = result[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"),
                let colon = rest[..<at].firstIndex(of: ":")
            {
                result.replaceSubrange(result.index(after: colon)..<at, with: "***")
            }
        }
        // password=... in conninfo or URL query
        var output = ""
        var remainder = Substring(result)
        while let range = remainder.range(of: "password=") {
            output += remainder[..<range.upperBound]
            output += "***"
            remainder = remainder[range.upperBound...]
            if remainder.first == "'" {
                // quoted conninfo value: skip to the closing quote
                var index = remainder.index(after: remainder.startIndex)
                while index < remainder.endIndex && remainder[index] != "'" {
                    if remainder[index] == "\\" { index = remainder.index(after: index) }
                    if index < remainder.endIndex { index = remainder.index(after: index) }
                }
                remainder = index < remainder.endIndex ? remainder[remainder.index(after: index)...] : ""
            } else {
                let end = remainder.firstIndex(where: { $0 == " " || $0 == "&" }) ?? remainder.endIndex
                remainder = remainder[end...]
            }
        }
        return output + remainder
    }
}
