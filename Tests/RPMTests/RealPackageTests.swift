// Parses packages built by rpmbuild and compares with what rpm itself reports.
import Foundation
import RPM
import TestSupport
import Testing

@Suite(.requires(rpmTools))
struct RealPackageTests {
    static let queryFormat =
        "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{LICENSE}|%{ARCH}|%{SUMMARY}|%{SOURCEPACKAGE}|%{SOURCERPM}"

    @Test(arguments: ["alphaSRPM", "alphaRPM", "alphaDocRPM", "helloSRPM", "helloRPM"])
    func matchesRPMQuery(_ which: String) throws {
        let fixtures = try fixtures()
        let path = try #require(
            [
                "alphaSRPM": fixtures.alphaSRPM, "alphaRPM": fixtures.alphaRPM, "alphaDocRPM": fixtures.alphaDocRPM,
                "helloSRPM": fixtures.helloSRPM, "helloRPM": fixtures.helloRPM,
            ][which]
        )
        let expected = try rpmQuery(path, Self.queryFormat, fixtures: fixtures)
        try #require(expected.count == 9)
        let package = try RPMReader.parse(try readBytes(path))

        #expect(package.name == expected[0])
        #expect(package.epoch.map(String.init) ?? "(none)" == expected[1])
        #expect(package.version == expected[2])
        #expect(package.release == expected[3])
        #expect(package.license == expected[4])
        #expect(package.arch == expected[5])
        #expect(package.summary == expected[6])
        let rpmSaysSource = expected[7] == "1"
        #expect(package.isSourcePackage == rpmSaysSource)
        #expect(package.isSourceLead == rpmSaysSource)
        #expect(package.main.contains(RPMTag.sourceRPM) == !rpmSaysSource)
        if !rpmSaysSource {
            #expect(package.main.string(RPMTag.sourceRPM) == expected[8])
        }
        #expect(package.canonicalFilename == URL(fileURLWithPath: path).lastPathComponent)
    }

    @Test func knownValues() throws {
        let fixtures = try fixtures()
        let helloSRPM = try RPMReader.parse(try readBytes(fixtures.helloSRPM))
        #expect(helloSRPM.name == "hello-tool")
        #expect(helloSRPM.epoch == 2)
        #expect(helloSRPM.evr == "2:1.2.3-4")
        #expect(helloSRPM.isSourcePackage)
        #expect(helloSRPM.arch == "x86_64")  // repodata says "src"; ARCH is the build arch

        let helloRPM = try RPMReader.parse(try readBytes(fixtures.helloRPM))
        #expect(!helloRPM.isSourcePackage)
        #expect(helloRPM.epoch == 2)
        #expect(helloRPM.main.string(RPMTag.sourceRPM) == "hello-tool-1.2.3-4.src.rpm")

        let alpha = try RPMReader.parse(try readBytes(fixtures.alphaRPM))
        #expect(alpha.epoch == nil)
        #expect(alpha.evr == "1.0-3")
        #expect(!alpha.isSourcePackage)
        #expect(alpha.main.strings(RPMTag.baseNames) == ["data.txt"])
        #expect(alpha.main.strings(RPMTag.dirNames) == ["/usr/share/alpha/"])

        // rpm 4.18 SRPMs provide every subpackage (docs §1.4).
        let alphaSRPM = try RPMReader.parse(try readBytes(fixtures.alphaSRPM))
        #expect(alphaSRPM.main.strings(RPMTag.provideName)?.contains("alpha-doc") == true)
        #expect(alphaSRPM.main.int32s(RPMTag.sourcePackage) == [1])
        #expect(try RPMReader.parseSourcePackage(try readBytes(fixtures.alphaSRPM)).name == "alpha")
    }

    @Test func binaryPackageIsNotSource() throws {
        let fixtures = try fixtures()
        for path in [fixtures.alphaRPM, fixtures.alphaDocRPM, fixtures.helloRPM] {
            let error = #expect(throws: RPMError.self) { try RPMReader.parseSourcePackage(try readBytes(path)) }
            #expect(error?.code == .notSourcePackage)
        }
    }

    /// The ranges are exact: the signature header's SHA256HEADER is the digest of
    /// `mainHeaderRange`, SIZE is `EOF - hdrStart`, and the payload starts with its compressor's magic.
    @Test(arguments: ["alphaSRPM", "alphaRPM", "helloSRPM", "helloRPM"])
    func rangesMatchSignatureDigests(_ which: String) throws {
        let fixtures = try fixtures()
        let path =
            which.hasPrefix("alpha")
            ? (which == "alphaSRPM" ? fixtures.alphaSRPM : fixtures.alphaRPM)
            : (which == "helloSRPM" ? fixtures.helloSRPM : fixtures.helloRPM)
        let bytes = try readBytes(path)
        let package = try RPMReader.parse(bytes)

        #expect(package.signatureRange.lowerBound == 96)
        #expect(package.mainHeaderRange.lowerBound % 8 == 0)
        #expect(package.mainHeaderRange.lowerBound - package.signatureRange.upperBound < 8)
        #expect(package.signature.entries.first?.tag == RPMTag.headerSignatures)
        #expect(package.main.entries.first?.tag == RPMTag.headerImmutable)

        let digest = try sha256Hex(Array(bytes[package.mainHeaderRange]), fixtures: fixtures)
        #expect(package.signature.string(RPMTag.sigSHA256Header) == digest)
        #expect(package.signature.string(RPMTag.sigSHA1Header)?.count == 40)
        #expect(package.signature.uint32s(RPMTag.sigSize) == [UInt32(bytes.count - package.mainHeaderRange.lowerBound)])
        #expect(package.signature.binary(RPMTag.sigMD5)?.count == 16)

        let payloadDigest = try sha256Hex(Array(bytes[package.payloadOffset...]), fixtures: fixtures)
        #expect(package.main.strings(RPMTag.payloadDigest) == [payloadDigest])

        let magic: [String: [UInt8]] = [
            "gzip": [0x1F, 0x8B], "zstd": [0x28, 0xB5, 0x2F, 0xFD], "xz": [0xFD, 0x37, 0x7A, 0x58],
        ]
        let compressor = try #require(package.main.string(RPMTag.payloadCompressor))
        let expectedMagic = try #require(magic[compressor])
        #expect(Array(bytes[package.payloadOffset..<(package.payloadOffset + expectedMagic.count)]) == expectedMagic)

        // Parsing exactly the headers (no payload) gives the same result.
        let headersOnly = try RPMReader.parse(Array(bytes[..<package.payloadOffset]))
        #expect(headersOnly.mainHeaderRange == package.mainHeaderRange)
        #expect(headersOnly.main.entries == package.main.entries)
    }

    @Test func fileModesAreZeroExtended() throws {
        let fixtures = try fixtures()
        let package = try RPMReader.parse(try readBytes(fixtures.helloRPM))
        #expect(package.main.entry(RPMTag.fileModes)?.type == .int16)
        // 0o100755 = 33261 does not fit in Int16; rpm treats INT16 as unsigned.
        #expect(package.main.uint16s(RPMTag.fileModes) == [0o100755])
        #expect(package.main.uint32s(RPMTag.fileModes) == [0o100755])
        #expect(package.main.int32s(RPMTag.fileModes) == [0o100755])
        #expect(package.main.int64s(RPMTag.fileModes) == [0o100755])
        #expect(package.main.string(RPMTag.fileModes) == nil)
        #expect(package.main.binary(RPMTag.fileModes) == nil)
    }
}
