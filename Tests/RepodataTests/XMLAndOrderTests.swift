import RPM
import Testing

@testable import Repodata

@Suite("XML text and attribute serialisation (libxml2 2.9.14 as createrepo_c uses it)")
struct XMLTextTests {
    private func attribute(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        XMLText.appendAttribute(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func text(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        XMLText.appendText(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func attributesEscapeMarkupWhitespaceAndEveryNonASCIICharacter() {
        #expect(self.attribute(Array("a&b<c>d\"e'f".utf8)) == "a&amp;b&lt;c&gt;d&quot;e'f")
        #expect(self.attribute(Array("t\tn\nr\r".utf8)) == "t&#9;n&#10;r&#13;")
        #expect(self.attribute(Array("Jürgen".utf8)) == "J&#xFC;rgen")
        #expect(self.attribute(Array("€ 日 🎉".utf8)) == "&#x20AC; &#x65E5; &#x1F389;")
    }

    @Test func elementTextKeepsNonASCIIRawAndEscapesOnlyMarkupAndCR() {
        #expect(self.text(Array("a & <b> \"q\" é\t€\r\n".utf8)) == "a &amp; &lt;b&gt; \"q\" é\t€&#13;\n")
    }

    @Test func invalidUTF8IsConvertedAsLatin1() {
        // 0xE9 alone is not UTF-8: Latin-1 é. 0x85 (C1 control range) is dropped, 0x01 too.
        #expect(self.text([0x63, 0x61, 0x66, 0xE9, 0x85, 0x01]) == "café")
        #expect(self.attribute([0x63, 0x61, 0x66, 0xE9]) == "caf&#xE9;")
        #expect(XMLText.latin1ToUTF8([0xC0, 0xFF, 0xBF, 0x09]) == [0xC3, 0x80, 0xC3, 0xBF, 0x09])
    }

    @Test func structurallyValidButOddSequencesFollowLibxml2() {
        // Overlong "/" passes xmlCheckUTF8 and is decoded by the serialiser as U+002F.
        #expect(self.attribute([0x61, 0xC0, 0xAF, 0x62]) == "a&#x2F;b")
        // U+FFFE is not an XML Char: each byte becomes a reference to itself.
        #expect(self.attribute([0x61, 0xEF, 0xBF, 0xBE, 0x62]) == "a&#xEF;&#xBF;&#xBE;b")
        #expect(XMLText.isStructurallyUTF8([0xC3]) == false)
        #expect(XMLText.isStructurallyUTF8([0xF8, 0x80, 0x80, 0x80, 0x80]) == false)
        #expect(XMLText.isStructurallyUTF8([0xED, 0xA0, 0x80]))  // a surrogate, structurally fine
    }

    @Test func controlCharactersAreDetected() {
        #expect(XMLText.hasForbiddenControlCharacters([0x61, 0x01]))
        #expect(!XMLText.hasForbiddenControlCharacters([0x61, 0x09, 0x0A, 0x0D]))
    }

    @Test func decimalFormatting() {
        var out: [UInt8] = []
        out.appendDecimal(Int64(0))
        out.append(UInt8(ascii: " "))
        out.appendDecimal(Int64(1_733_140_802))
        out.append(UInt8(ascii: " "))
        out.appendDecimal(Int64(-42))
        out.append(UInt8(ascii: " "))
        out.appendDecimal(UInt64.max)
        #expect(String(decoding: out, as: UTF8.self) == "0 1733140802 -42 18446744073709551615")
    }
}

@Suite("Dependency strings")
struct DependencyStringTests {
    private func evr(_ text: String) -> [String?]? {
        guard let parts = PackageModel.splitEVR(Array(text.utf8)[...]) else { return nil }
        return [parts.epoch, parts.version, parts.release].map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test func versionStringsSplitLikeCreaterepoC() {
        #expect(self.evr("") == [nil, nil, nil])
        #expect(self.evr("3") == ["0", "3", nil])
        #expect(self.evr("2:1.3-1") == ["2", "1.3", "1"])
        #expect(self.evr("1.0-") == ["0", "1.0", nil])
        #expect(self.evr(":1.0") == ["0", "1.0", nil])
        #expect(self.evr(" 1:2.0-3") == [" 1", "2.0", "3"])  // strtol skips leading space
        #expect(self.evr("1:") == ["1", "", nil])
        #expect(self.evr("abc:1.0") == nil)  // non-numeric epoch: the dependency is dropped
        #expect(self.evr("1.0-2-3") == ["0", "1.0", "2-3"])
    }

    @Test func flagsTextUsesTheLowFourBits() {
        #expect(PackageModel.flagsText(2)?.description == "LT")
        #expect(PackageModel.flagsText(4)?.description == "GT")
        #expect(PackageModel.flagsText(8)?.description == "EQ")
        #expect(PackageModel.flagsText(10)?.description == "LE")
        #expect(PackageModel.flagsText(12 | 0x200)?.description == "GE")
        #expect(PackageModel.flagsText(0) == nil)
        #expect(PackageModel.flagsText(6) == nil)
    }

    @Test func versionComparison() {
        func compare(_ a: String, _ b: String) -> Int { rpmVersionCompare(Array(a.utf8), Array(b.utf8)) }
        #expect(compare("1.0", "1.0") == 0)
        #expect(compare("1.0", "1.1") == -1)
        #expect(compare("2.34", "2.4") == 1)
        #expect(compare("1.0~rc1", "1.0") == -1)
        #expect(compare("1.0^git1", "1.0") == 1)
        #expect(compare("1.0a", "1.0") == 1)
        #expect(compare("010", "10") == 0)
        #expect(compare("1.0", "1_0") == 0)
    }

    @Test func libcRequiresCompareByTheVersionInParentheses() {
        func compare(_ a: String, _ b: String) -> Int {
            PackageModel.compareLibcDependency(Array(a.utf8)[...], Array(b.utf8)[...])
        }
        #expect(compare("libc.so.6(GLIBC_2.4)(64bit)", "libc.so.6(GLIBC_2.34)(64bit)") == 2)
        #expect(compare("libc.so.6(GLIBC_2.34)(64bit)", "libc.so.6(GLIBC_2.4)(64bit)") == 1)
        #expect(compare("libc.so.6()(64bit)", "libc.so.6(GLIBC_2.2.5)(64bit)") == 2)
        #expect(compare("libc.so.6", "libc.so.6(GLIBC_2.2.5)") == 2)
    }

    @Test func primaryFileRule() {
        for path in ["/etc/x", "/usr/lib/sendmail", "/usr/bin/x", "/opt/a/sbin/daemon", "/usr/libexec/a/bin/helper"] {
            #expect(PackageModel.isPrimaryFile(Array(path.utf8)), "\(path)")
        }
        for path in ["/etc", "/usr/libexec/a/bin", "/usr/share/x", "/usr/lib/sendmail2x", "hello.sh"] {
            #expect(!PackageModel.isPrimaryFile(Array(path.utf8)), "\(path)")
        }
    }
}

@Suite("Documents, repomd.xml and package order")
struct DocumentTests {
    @Test func headsAndTails() {
        #expect(
            String(decoding: MetadataKind.primary.head(packageCount: 3), as: UTF8.self)
                == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"3\">\n"
        )
        #expect(
            String(decoding: MetadataKind.filelists.head(packageCount: 0), as: UTF8.self)
                == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"0\">\n"
        )
        #expect(
            String(decoding: MetadataKind.other.head(packageCount: 12), as: UTF8.self)
                == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"12\">\n"
        )
        #expect(
            MetadataKind.allCases.map { String(decoding: $0.tail, as: UTF8.self) } == [
                "</metadata>", "</filelists>", "</otherdata>",
            ]
        )
        #expect(MetadataKind.other.document([]) == MetadataKind.other.head(packageCount: 0) + MetadataKind.other.tail)
    }

    @Test func repomdLayout() {
        let sha = String(repeating: "a", count: 64)
        let records = [
            RepomdRecord(
                type: "other",
                checksum: sha,
                openChecksum: sha,
                locationHref: "repodata/\(sha)-other.xml.gz",
                timestamp: 3,
                size: 30,
                openSize: 300
            ),
            RepomdRecord(
                type: "primary",
                checksum: sha,
                openChecksum: sha,
                locationHref: "repodata/\(sha)-primary.xml.gz",
                timestamp: 1,
                size: 10,
                openSize: 100
            ),
            RepomdRecord(
                type: "filelists",
                checksum: sha,
                openChecksum: nil,
                locationHref: "repodata/\(sha)-filelists.xml.gz",
                timestamp: 2,
                size: 20,
                openSize: nil
            ),
        ]
        let expected = """
            <?xml version="1.0" encoding="UTF-8"?>
            <repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
              <revision>1795379138</revision>
              <data type="primary">
                <checksum type="sha256">\(sha)</checksum>
                <open-checksum type="sha256">\(sha)</open-checksum>
                <location href="repodata/\(sha)-primary.xml.gz"/>
                <timestamp>1</timestamp>
                <size>10</size>
                <open-size>100</open-size>
              </data>
              <data type="filelists">
                <checksum type="sha256">\(sha)</checksum>
                <location href="repodata/\(sha)-filelists.xml.gz"/>
                <timestamp>2</timestamp>
                <size>20</size>
              </data>
              <data type="other">
                <checksum type="sha256">\(sha)</checksum>
                <open-checksum type="sha256">\(sha)</open-checksum>
                <location href="repodata/\(sha)-other.xml.gz"/>
                <timestamp>3</timestamp>
                <size>30</size>
                <open-size>300</open-size>
              </data>
            </repomd>

            """
        #expect(String(decoding: Repomd.render(revision: "1795379138", records: records), as: UTF8.self) == expected)
        #expect(Repomd.fileName(checksum: sha, kind: .filelists) == "\(sha)-filelists.xml.gz")
    }

    @Test func packagesAreOrderedByFileNameThenDirectory() {
        let hrefs = ["z/b.rpm", "a.rpm", "b.rpm", "sub/a.rpm", "sub-b/a.rpm", "sub/x/a.rpm", "A.rpm"]
        let sorted = PackageOrder.sorted(hrefs.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
        #expect(sorted == ["A.rpm", "a.rpm", "sub/a.rpm", "sub-b/a.rpm", "sub/x/a.rpm", "b.rpm", "z/b.rpm"])
    }
}
