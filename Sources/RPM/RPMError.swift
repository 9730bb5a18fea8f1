/// An error from reading an RPM file.
///
/// `code` says what went wrong and is extensible: new codes can be added without breaking
/// clients, so `switch` over it with a `default`. `detail` is a human-readable explanation that
/// never contains more than a few bytes of the input.
public struct RPMError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case truncated
            case badLeadMagic
            case badLead
            case badHeaderMagic
            case headerTooLarge
            case badIndex
            case badRegion
            case badTagValue
            case notSourcePackage
            case cannotSign
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// The input ended before the parser could finish; `bytesNeeded` says how many bytes
        /// (counted from the start of the file) are needed to make progress.
        public static let truncated = Code(.truncated)
        /// The first four bytes are not the RPM lead magic `ED AB EE DB`.
        public static let badLeadMagic = Code(.badLeadMagic)
        /// The lead has the right magic but an unsupported major version or signature type.
        public static let badLead = Code(.badLead)
        /// A header does not start with `8E AD E8 01 00 00 00 00`.
        public static let badHeaderMagic = Code(.badHeaderMagic)
        /// A header's index count or data size exceeds the reader's limits.
        public static let headerTooLarge = Code(.headerTooLarge)
        /// An index entry is malformed (bad type, count, offset, alignment, overlap or unterminated string).
        public static let badIndex = Code(.badIndex)
        /// The header region (tag 62 / 63 and its trailer) is missing or inconsistent.
        public static let badRegion = Code(.badRegion)
        /// A tag the reader needs is missing, has the wrong type or an unusable value.
        public static let badTagValue = Code(.badTagValue)
        /// A source package was required but the file is a binary package.
        public static let notSourcePackage = Code(.notSourcePackage)
        /// A signature cannot be added: a bad signature tag or packet, or the new signature header would exceed
        /// rpm's limits.
        public static let cannotSign = Code(.cannotSign)

        public var description: String {
            switch self.value {
            case .truncated: return "truncated"
            case .badLeadMagic: return "badLeadMagic"
            case .badLead: return "badLead"
            case .badHeaderMagic: return "badHeaderMagic"
            case .headerTooLarge: return "headerTooLarge"
            case .badIndex: return "badIndex"
            case .badRegion: return "badRegion"
            case .badTagValue: return "badTagValue"
            case .notSourcePackage: return "notSourcePackage"
            case .cannotSign: return "cannotSign"
            }
        }
    }

    public let code: Code
    public let detail: String
    /// For `.truncated`: how many bytes from the start of the file are needed in total to make
    /// progress. Always greater than the number of bytes given. `nil` for every other code.
    public let bytesNeeded: Int?

    public init(code: Code, detail: String, bytesNeeded: Int? = nil) {
        self.code = code
        self.detail = detail
        self.bytesNeeded = bytesNeeded
    }

    public var description: String {
        if let bytesNeeded = self.bytesNeeded {
            return "RPMError(\(self.code), need \(bytesNeeded) bytes): \(self.detail)"
        }
        return "RPMError(\(self.code)): \(self.detail)"
    }

    static func truncated(_ detail: String, need: Int) -> RPMError {
        RPMError(code: .truncated, detail: detail, bytesNeeded: need)
    }
}
