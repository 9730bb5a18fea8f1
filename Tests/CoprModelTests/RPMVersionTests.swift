import Foundation  // JSONEncoder/JSONDecoder only, to check the wire shape; the module itself does not use Foundation.
import Testing

@testable import CoprModel

@Suite struct RPMVersionTests {
    @Test(arguments: rpmvercmpCases)
    func rpmvercmp(a: String, b: String, expected: Int) {
        #expect(RPMVersion.compare(a, b) == expected)
    }

    @Test func antisymmetricOverTheWholeTable() {
        for (a, b, _) in rpmvercmpCases {
            #expect(RPMVersion.compare(a, b) == -RPMVersion.compare(b, a), "\(a) vs \(b)")
        }
    }

    @Test func classics() {
        #expect(RPMVersion.compare("1.0", "1.0.1") == -1)
        #expect(RPMVersion.compare("1.0a", "1.0") == 1)
        #expect(RPMVersion.compare("1.0~rc1", "1.0") == -1)
        #expect(RPMVersion.compare("1.0^git1", "1.0") == 1)
        #expect(RPMVersion.compare("1.0^git1", "1.0.1") == -1)
        #expect(RPMVersion.compare("1.10", "1.9") == 1)
        #expect(RPMVersion.compare("", "") == 0)
        #expect(RPMVersion.compare("", "1") == -1)
        #expect(RPMVersion.compare("1", "") == 1)
        #expect(RPMVersion.compare("~", "") == -1)
        #expect(RPMVersion.compare("00000000000000000000000000000001", "1") == 0)
        #expect(RPMVersion.compare("99999999999999999999999999999999", "100000000000000000000000000000000") == -1)
    }

    @Test func evr() {
        #expect(RPMVersion.compareEVR((nil, "1.0", "1"), (0, "1.0", "1")) == 0)
        #expect(RPMVersion.compareEVR((1, "1.0", "1"), (nil, "9.0", "1")) == 1)
        #expect(RPMVersion.compareEVR((nil, "1.0", "1.fc39"), (nil, "1.0", "1.fc40")) == -1)
        #expect(RPMVersion.compareEVR((nil, "1.0", "2"), (nil, "1.0", "10")) == -1)
        let a = NEVRA(name: "hello", epoch: 2, version: "1.0", release: "1", arch: "noarch")
        let b = NEVRA(name: "hello", epoch: nil, version: "3.0", release: "1", arch: "noarch")
        #expect(RPMVersion.compareEVR(a, b) == 1)
        #expect(RPMVersion.compareEVR(b, a) == -1)
    }
}

@Suite struct NEVRATests {
    @Test(arguments: [
        ("hello-copr-1.0-2.noarch.rpm", "hello-copr", "1.0", "2", "noarch"),
        ("hello-copr-1.0-2.src.rpm", "hello-copr", "1.0", "2", "src"),
        ("python3-foo-2.1.0~rc1-1.fc39.x86_64.rpm", "python3-foo", "2.1.0~rc1", "1.fc39", "x86_64"),
        ("libstdc++-13.2.1-4.fc39.i686.rpm", "libstdc++", "13.2.1", "4.fc39", "i686"),
    ])
    func parsesFileNames(file: String, name: String, version: String, release: String, arch: String) throws {
        let nevra = try #require(NEVRA(rpmFileName: file))
        #expect(nevra == NEVRA(name: name, epoch: nil, version: version, release: release, arch: arch))
        #expect(nevra.fileName == file)
    }

    @Test(arguments: [
        "hello.rpm", "hello-1.0.rpm", "hello-1.0-1.rpm", "a/hello-1.0-1.noarch.rpm", "-1.0-1.noarch.rpm",
        "hello-1.0-1.noarch", "hello-1.0-.noarch.rpm",
    ])
    func rejectsOtherShapes(file: String) {
        #expect(NEVRA(rpmFileName: file) == nil)
    }

    @Test func descriptionAndEVR() {
        let plain = NEVRA(name: "hello", version: "1.0", release: "1.fc39", arch: "x86_64")
        #expect(plain.evr == "1.0-1.fc39")
        #expect(plain.description == "hello-1.0-1.fc39.x86_64")
        let epoch = NEVRA(name: "hello", epoch: 3, version: "1.0", release: "1", arch: "noarch")
        #expect(epoch.evr == "3:1.0-1")
        #expect(epoch.description == "hello-3:1.0-1.noarch")
        #expect(NEVRA(name: "x", epoch: 0, version: "1", release: "1", arch: "noarch").evr == "1-1")
    }

    @Test func jsonShapeKeepsNullEpoch() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(
            decoding: try encoder.encode(NEVRA(name: "hello", version: "1.0", release: "1", arch: "noarch")),
            as: UTF8.self
        )
        #expect(json == #"{"arch":"noarch","epoch":null,"name":"hello","release":"1","version":"1.0"}"#)
        let withEpoch = String(
            decoding: try encoder.encode(NEVRA(name: "hello", epoch: 2, version: "1.0", release: "1", arch: "noarch")),
            as: UTF8.self
        )
        #expect(withEpoch == #"{"arch":"noarch","epoch":2,"name":"hello","release":"1","version":"1.0"}"#)
    }

    @Test func jsonDecodesNullMissingAndIntegerEpoch() throws {
        let decoder = JSONDecoder()
        let a = try decoder.decode(
            NEVRA.self,
            from: Data(#"{"name":"h","epoch":null,"version":"1","release":"2","arch":"x86_64"}"#.utf8)
        )
        #expect(a == NEVRA(name: "h", epoch: nil, version: "1", release: "2", arch: "x86_64"))
        let b = try decoder.decode(
            NEVRA.self,
            from: Data(#"{"name":"h","version":"1","release":"2","arch":"x86_64"}"#.utf8)
        )
        #expect(b.epoch == nil)
        let c = try decoder.decode(
            NEVRA.self,
            from: Data(#"{"name":"h","epoch":5,"version":"1","release":"2","arch":"x86_64"}"#.utf8)
        )
        #expect(c.epoch == 5)
    }

    @Test func buildStateIsCodedAsItsString() throws {
        let data = try JSONEncoder().encode([BuildState.succeeded, .waiting])
        #expect(String(decoding: data, as: UTF8.self) == #"["succeeded","waiting"]"#)
        #expect(try JSONDecoder().decode([BuildState].self, from: Data(#"["failed"]"#.utf8)) == [.failed])
    }
}

@Suite struct ResultsLayoutTests {
    @Test func resultDirNames() {
        #expect(resultDirName(buildID: 42, packageName: "hello") == "00000042-hello")
        #expect(resultDirName(buildID: 1, packageName: "hello-copr") == "00000001-hello-copr")
        #expect(resultDirName(buildID: 12_345_678, packageName: "x") == "12345678-x")
        #expect(resultDirName(buildID: 123_456_789, packageName: "x") == "123456789-x")
        #expect(resultDirName(buildID: 0, packageName: "x") == "00000000-x")
    }

    @Test func urls() throws {
        let tester = try #require(OwnerName("tester"))
        let group = try #require(OwnerName("@grp"))
        let results = "http://127.0.0.1:8765/results/"
        #expect(
            ResultsLayout.projectURL(resultsURL: results, owner: tester, project: "demo")
                == "http://127.0.0.1:8765/results/tester/demo"
        )
        #expect(
            ResultsLayout.chrootRepoURL(resultsURL: results, owner: group, dirName: "demo", chroot: "fedora-39-x86_64")
                == "http://127.0.0.1:8765/results/@grp/demo/fedora-39-x86_64/"
        )
        // copr-protocol.md §4 download-build: /results/tester/demo/fedora-39-x86_64/00000001-hello-copr/
        #expect(
            ResultsLayout.resultURL(
                resultsURL: "http://127.0.0.1:8765/results",
                owner: tester,
                dirName: "demo",
                chroot: "fedora-39-x86_64",
                buildID: 1,
                packageName: "hello-copr"
            ) == "http://127.0.0.1:8765/results/tester/demo/fedora-39-x86_64/00000001-hello-copr/"
        )
        #expect(
            ResultsLayout.pubkeyURL(resultsURL: results, owner: group, project: "demo")
                == "http://127.0.0.1:8765/results/@grp/demo/pubkey.gpg"
        )
    }
}
