import Glibc
import KoperProtocol

/// Facts about the builder host: where tools are, its name, who we run as.
struct HostEnvironment: Sendable {
    /// `PATH` used to find tools and given to unsandboxed children.
    var searchPath: String
    var hostName: String
    var userID: UInt32

    static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

    static func current() -> HostEnvironment {
        let path = getenv("PATH").map { String(cString: $0) } ?? ""
        return HostEnvironment(
            searchPath: path.isEmpty ? self.defaultSearchPath : path,
            hostName: self.currentHostName(),
            userID: getuid()
        )
    }

    /// The absolute path of an executable named `name` on ``searchPath``, or `nil`.
    func find(_ name: String) -> String? {
        for dir in self.searchPath.split(separator: ":") where dir.hasPrefix("/") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 {
                var st = stat()
                if stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG {
                    return candidate
                }
            }
        }
        return nil
    }

    /// Like ``find(_:)`` but throws a status-2 error naming the Debian package to install.
    func require(_ name: String, package: String) throws(BuilderError) -> String {
        guard let path = self.find(name) else {
            throw .infrastructure("\(name) is not installed on this builder (Debian package: \(package))")
        }
        return path
    }

    /// The environment for unsandboxed children: only `PATH`, `LANG`, `HOME`, `USER`, `LOGNAME`, `TMPDIR`
    /// (the builder holds no credentials, and passes on nothing it does not know).
    func childEnvironment(home: String, tmpdir: String) -> [String: String] {
        var env: [String: String] = [
            "PATH": self.searchPath,
            "LANG": "C.UTF-8",
            "HOME": home,
            "TMPDIR": tmpdir,
        ]
        for key in ["USER", "LOGNAME"] {
            if let value = getenv(key) {
                env[key] = String(cString: value)
            }
        }
        return env
    }

    /// The host name, reduced to letters, digits, dots and dashes (`koper-builder` if that leaves nothing).
    static func currentHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else {
            return "koper-builder"
        }
        let raw = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let cleaned = String(
            raw.unicodeScalars.filter {
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "." || $0 == "-")
            }
            .prefix(64)
        )
        return FieldRules.isHostName(cleaned) ? cleaned : "koper-builder"
    }
}
