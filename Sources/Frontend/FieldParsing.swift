import KoperJSON

/// Lenient readers for the JSON values copr-cli sends (lists as strings, numbers and booleans as text).
func optionalStringList(_ v: JSON?, field: String) throws -> [String]? {
    guard let v, !v.isNull else { return nil }
    if let s = v.stringValue {
        return s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" }).map(String.init)
    }
    guard let a = v.arrayValue else { throw APIError.badRequest("\(field): must be a list of strings") }
    return try a.map {
        guard let s = $0.stringValue else { throw APIError.badRequest("\(field): must be a list of strings") }
        return s
    }
}

/// copr-cli sends numbers typed by the user as strings ("3600").
func optionalInt(_ v: JSON?, field: String) throws -> Int? {
    guard let v, !v.isNull else { return nil }
    if let i = v.intValue { return i }
    if let s = v.stringValue {
        if s.isEmpty { return nil }
        if let i = Int(s) { return i }
    }
    throw APIError.badRequest("\(field): Not a valid integer value.")
}

func optionalBool(_ v: JSON?, field: String) throws -> Bool? {
    guard let v, !v.isNull else { return nil }
    if let b = v.boolValue { return b }
    if let s = v.stringValue?.lowercased() {
        if ["true", "on", "yes", "1", "y"].contains(s) { return true }
        if ["false", "off", "no", "0", "n"].contains(s) { return false }
    }
    if let i = v.intValue { return i != 0 }
    throw APIError.badRequest("\(field): Not a valid boolean value.")
}
