/// An error from turning a parsed RPM into repodata.
///
/// `code` is extensible (switch with a `default`). `detail` names the package and the problem, never more
/// than a short excerpt of header data.
public struct RepodataError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case forbiddenControlCharacters
            case malformedFileList
            case invalidArgument
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// A string of the package holds a control character (< 0x20 other than TAB, LF, CR); createrepo_c
        /// refuses such packages ("Forbidden control chars found").
        public static let forbiddenControlCharacters = Code(.forbiddenControlCharacters)
        /// The file list cannot be reassembled (a directory index points outside DIRNAMES).
        public static let malformedFileList = Code(.malformedFileList)
        /// A caller-supplied value is unusable (for example a checksum that is not 64 lowercase hex digits).
        public static let invalidArgument = Code(.invalidArgument)

        public var description: String {
            switch self.value {
            case .forbiddenControlCharacters: return "forbiddenControlCharacters"
            case .malformedFileList: return "malformedFileList"
            case .invalidArgument: return "invalidArgument"
            }
        }
    }

    public let code: Code
    public let detail: String

    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "RepodataError(\(self.code)): \(self.detail)" }
}
