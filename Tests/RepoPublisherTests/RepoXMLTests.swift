import Repodata
import TestSupport
import Testing

// The verifier's XML reader and the two document readers on top of it, without files.
@testable import RepoPublisher

@Suite struct RepoXMLTests {
    private func events(_ text: String) throws -> [String] {
        var reader = RepoXMLReader(Array(text.utf8))
        var out: [String] = []
        while let event = try reader.next() {
            switch event {
            case .start(let name, let attributes, let selfClosing):
                let rendered = attributes.map {
                    " \(String(decoding: $0.name, as: UTF8.self))=\(String(decoding: $0.value, as: UTF8.self))"
                }.joined()
                out.append("<\(String(decoding: name, as: UTF8.self))\(rendered)\(selfClosing ? "/" : "")>")
            case .end(let name):
                out.append("</\(String(decoding: name, as: UTF8.self))>")
            case .text(let bytes):
                out.append(String(decoding: bytes, as: UTF8.self))
            }
        }
        return out
    }

    @Test func readsWhatRepodataContains() throws {
        let text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <a x="1" y='a&amp;b &lt;&#233;&#x20AC;&gt;'><b/><c>t&quot;u<![CDATA[<raw>&amp;]]></c></a>

            """
        #expect(
            try self.events(text) == [
                "<a x=1 y=a&b <é€>>", "<b/>", "<c>", "t\"u", "<raw>&amp;", "</c>", "</a>",
            ]
        )
    }

    @Test func refusesMalformedDocuments() {
        let bad = [
            "",
            "text only",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a/>trailing",
            "<a x=1/>",
            "<a x=\"1/>",
            "<a x=\"<\"/>",
            "<ax=\"1\"y=\"2\"/>",
            "<a>&unknown;</a>",
            "<a>&#0;</a>",
            "<a>&amp</a>",
            "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
            "<a><!-- unterminated </a>",
            String(repeating: "<a>", count: 65) + String(repeating: "</a>", count: 65),
        ]
        for text in bad {
            #expect(throws: RepoXMLReader.Failure.self, "\(text.prefix(40))") { try self.events(text) }
        }
        // 64 levels are fine.
        #expect(throws: Never.self) {
            try self.events(String(repeating: "<a>", count: 64) + String(repeating: "</a>", count: 64))
        }
    }

    @Test func repomdAsThePublisherRendersIt() throws {
        let records = [
            RepomdRecord(
                type: "primary",
                checksum: String(repeating: "a", count: 64),
                openChecksum: String(repeating: "b", count: 64),
                locationHref: "repodata/\(String(repeating: "a", count: 64))-primary.xml.gz",
                timestamp: 1_700_000_000,
                size: 1234,
                openSize: 5678
            ),
            RepomdRecord(
                type: "other",
                checksum: String(repeating: "c", count: 64),
                openChecksum: nil,
                locationHref: "repodata/c-other.xml.gz",
                timestamp: 1_700_000_001,
                size: 99,
                openSize: nil
            ),
        ]
        let entries = try RepodataDocuments.repomd(Repomd.render(revision: "1700000000", records: records))
        #expect(
            entries == [
                RepomdEntry(
                    type: "primary",
                    checksumType: "sha256",
                    checksum: records[0].checksum,
                    openChecksumType: "sha256",
                    openChecksum: records[0].openChecksum,
                    locationHref: records[0].locationHref,
                    size: 1234,
                    openSize: 5678
                ),
                RepomdEntry(
                    type: "other",
                    checksumType: "sha256",
                    checksum: records[1].checksum,
                    locationHref: "repodata/c-other.xml.gz",
                    size: 99
                ),
            ]
        )
        #expect(throws: RepoXMLReader.Failure.self) { try RepodataDocuments.repomd(Array("<metadata/>".utf8)) }
    }

    @Test func primaryPackages() throws {
        let text = """
            <?xml version="1.0" encoding="UTF-8"?>
            <metadata xmlns="http://linux.duke.edu/metadata/common" packages="2">
            <package type="rpm">
              <name>a</name>
              <checksum type="sha256" pkgid="YES">0011</checksum>
              <size package="42" installed="100" archive="200"/>
              <location href="b/a&amp;x-1-1.noarch.rpm"/>
              <format><rpm:provides><rpm:entry name="a"/></rpm:provides><file>/usr/bin/a</file></format>
            </package>
            <package type="rpm">
              <checksum type="sha512" pkgid="YES">
                ff
              </checksum>
              <location href="c.rpm"/>
            </package>
            </metadata>
            """
        let (packages, declared) = try RepodataDocuments.primary(Array(text.utf8))
        #expect(declared == 2)
        #expect(
            packages == [
                PrimaryEntry(
                    locationHref: "b/a&x-1-1.noarch.rpm",
                    checksumType: "sha256",
                    checksum: "0011",
                    pkgid: true,
                    size: 42
                ),
                PrimaryEntry(locationHref: "c.rpm", checksumType: "sha512", checksum: "ff", pkgid: true, size: nil),
            ]
        )
        #expect(throws: RepoXMLReader.Failure.self) { try RepodataDocuments.primary(Array("<repomd/>".utf8)) }
    }

    @Test func confinedHrefs() {
        #expect(RepoVerifier.isConfined("a/b.rpm"))
        #expect(RepoVerifier.isConfined("repodata/x-primary.xml.gz"))
        for href in ["", "/etc/passwd", "../x.rpm", "a/../../x.rpm", "a//b.rpm", "./a.rpm", "a/."] {
            #expect(!RepoVerifier.isConfined(href), "\(href)")
        }
    }

    /// Random damage to a real document: every outcome is a value or a `Failure`, never a crash.
    @Test func mutatedDocumentsNeverCrash() {
        let record = RepomdRecord(
            type: "primary",
            checksum: String(repeating: "a", count: 64),
            openChecksum: String(repeating: "b", count: 64),
            locationHref: "repodata/a-primary.xml.gz",
            timestamp: 1,
            size: 2,
            openSize: 3
        )
        let original = Repomd.render(revision: "1", records: [record, record])
        var rng = SeededGenerator(seed: 0x5EED_0010)
        var parsed = 0
        for _ in 0..<20_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: index)
                default: bytes.insert(Array("<>&\"'/;#x".utf8).randomElement(using: &rng)!, at: index)
                }
            }
            if (try? RepodataDocuments.repomd(bytes)) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
        #expect(parsed < 20_000)
    }
}
