import AtomicFile
import Foundation
import Testing

@Suite struct AtomicFileTests {
    func directory() throws -> String {
        let d = NSTemporaryDirectory() + "koper-atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func replacesTheWholeFileWithTheModeAndLeavesNoTemporaryFile() throws {
        let d = try directory()
        defer { try? FileManager.default.removeItem(atPath: d) }
        let path = d + "/state.json"
        try AtomicFile.write(Array("first".utf8), to: path, mode: 0o600)
        try AtomicFile.write(Array("second, longer".utf8), to: path, mode: 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second, longer")
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d) == ["state.json"])
        try AtomicFile.write([], to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
    }

    @Test func aFailedWriteLeavesTheOldContentAndNoTemporaryFile() throws {
        let d = try directory()
        defer { try? FileManager.default.removeItem(atPath: d) }
        // No such directory: open fails, nothing is created.
        #expect(throws: AtomicFileError.self) { try AtomicFile.write([1], to: d + "/missing/file") }
        // The target is a directory: rename fails; the old directory stays and the temporary file is removed.
        let target = d + "/occupied"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        do {
            try AtomicFile.write(Array("x".utf8), to: target)
            Issue.record("writing over a directory succeeded")
        } catch {
            #expect(error.step == "rename")
            #expect(error.description.contains(target))
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d) == ["occupied"])
    }
}
