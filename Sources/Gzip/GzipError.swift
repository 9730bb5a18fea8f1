/// An error from the `Gzip` module. Messages describe the failure, never the data.
public struct GzipError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidArgument
            case corruptData
            case truncated
            case limitExceeded
            case internalError
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A compression level outside `-1...9`, a negative limit, or a compressor used after `finish()`.
        public static let invalidArgument = Code(.invalidArgument)
        /// The input is not gzip data, or a member's header, deflate stream or CRC/length trailer is wrong.
        public static let corruptData = Code(.corruptData)
        /// The input ended inside a gzip member.
        public static let truncated = Code(.truncated)
        /// Decompressing would produce more than the caller's `limit` bytes.
        public static let limitExceeded = Code(.limitExceeded)
        /// zlib failed for a reason that is not the input's fault (out of memory, version mismatch).
        public static let internalError = Code(.internalError)

        public var description: String {
            switch self.base {
            case .invalidArgument: "invalidArgument"
            case .corruptData: "corruptData"
            case .truncated: "truncated"
            case .limitExceeded: "limitExceeded"
            case .internalError: "internalError"
            }
        }
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "GzipError.\(self.code): \(self.message)" }
}
