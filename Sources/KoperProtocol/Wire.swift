import Foundation
public import KoperJSON

/// The codec of the internal wire contract (decision 0008): the message types are `Codable` and travel as JSON
/// written and read by Foundation's encoder and decoder, so one declaration fixes both sides. Keys are written
/// sorted, so the same message is always the same bytes (job files, `task.json`).
public enum Wire {
    /// Messages larger than this are refused before decoding.
    public static let maxMessageBytes = 64 << 20

    public static func encode<T: Encodable>(_ value: T) throws(WireError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
            return Array(try encoder.encode(value))
        } catch {
            throw WireError("cannot encode \(T.self): \(error)")
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(WireError) -> T {
        guard bytes.count <= self.maxMessageBytes else {
            throw WireError("\(T.self) is larger than \(self.maxMessageBytes) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw WireError("malformed \(T.self): \(Self.describe(error))")
        } catch {
            throw WireError("malformed \(T.self)")
        }
    }

    /// The value as a KoperJSON value (to embed it in a larger answer).
    public static func json<T: Encodable>(_ value: T) throws(WireError) -> JSON {
        do {
            return try JSONParser.parse(try self.encode(value))
        } catch {
            throw WireError("cannot encode \(T.self)")
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from json: JSON) throws(WireError) -> T {
        try self.decode(type, from: json.serialized())
    }

    /// Names the field (coding path) and the problem, never the value.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the message" : p
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return parent == "the message"
                ? "\(key.stringValue) is required" : "\(parent).\(key.stringValue) is required"
        case .valueNotFound(_, let context): return "\(path(context)) must not be null"
        case .typeMismatch(let type, let context): return "\(path(context)) must be \(Self.typeName(type))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context)) is invalid"
        @unknown default: return "invalid"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Bool.Type: return "a boolean"
        case is [Any].Type: return "a list"
        default: return "an object"
        }
    }
}

/// A wire message that could not be encoded, decoded or validated. Never contains a field's value.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { self.message }
}
