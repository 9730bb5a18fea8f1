#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// Finds and kills the gpg processes gpgme started for one home directory.
///
/// `gpgme_cancel_async` only takes effect when gpgme's I/O loop next wakes up; a gpg that is blocked (on a frozen
/// gpg-agent, a stuck disk) writes nothing, so the operation would wait for it however long it takes. gpgme
/// double-forks its engine, so the process is not our child and its pid is not exposed: it is found in /proc by
/// what gpgme always passes it, `--homedir HOME`, and by our uid. The daemons gpg talks to (gpg-agent, dirmngr,
/// keyboxd, scdaemon) carry the same arguments and are left alone; the keyring runs one operation at a time per home,
/// so whatever else matches is that operation's engine. Linux only (elsewhere: no-op).
enum EngineProcesses {
    static let daemons: Set<String> = ["gpg-agent", "dirmngr", "keyboxd", "scdaemon", "gpgconf"]

    /// Sends SIGKILL to every matching process; returns how many were signalled.
    @discardableResult
    static func kill(homeDirectory: String) -> Int {
        #if os(Linux)
        let needle = Array("--homedir".utf8) + [0] + Array(homeDirectory.utf8) + [0]
        let me = getpid()
        let uid = geteuid()
        guard let dir = opendir("/proc") else { return 0 }
        defer { closedir(dir) }
        var killed = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), pid != me else { continue }
            var st = stat()
            guard stat("/proc/\(name)", &st) == 0, st.st_uid == uid else { continue }
            let cmdline = readSmallFile("/proc/\(name)/cmdline", limit: 64 << 10)
            guard contains(cmdline, needle) else { continue }
            let argv0 = cmdline.prefix { $0 != 0 }
            let base = String(decoding: argv0.split(separator: UInt8(ascii: "/")).last ?? argv0[...], as: UTF8.self)
            if daemons.contains(base) { continue }
            if Glibc.kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
        #else
        return 0
        #endif
    }

    static func readSmallFile(_ path: String, limit: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        // Arguments start after a NUL (or at 0): match whole arguments only.
        var i = 0
        while i + needle.count <= haystack.count {
            if (i == 0 || haystack[i - 1] == 0) && haystack[i..<(i + needle.count)].elementsEqual(needle) {
                return true
            }
            i += 1
        }
        return false
    }
}
