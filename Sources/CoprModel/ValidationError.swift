/// A rejected user input: the form field it belongs to (when there is one) and a human-readable message.
///
/// Upstream Copr reports form failures as one `field: message` line per error (copr-api-behaviour.md §1 4.1),
/// which is exactly what ``description`` produces. The message never contains secrets; it may quote the
/// offending value, because every value validated here is a public name, URL or pattern.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The API/form field name (`"name"`, `"chroots"`, `"homepage"` …), or `nil` for a whole-request error.
    public let field: String?
    /// The message, without the field prefix.
    public let message: String

    public init(field: String? = nil, _ message: String) {
        self.field = field
        self.message = message
    }

    public init(field: String?, message: String) {
        self.field = field
        self.message = message
    }

    /// `"field: message"`, or just the message when there is no field.
    public var description: String {
        if let field = self.field {
            return "\(field): \(self.message)"
        }
        return self.message
    }
}
