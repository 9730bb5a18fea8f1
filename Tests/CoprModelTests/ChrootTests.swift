import Testing

@testable import CoprModel

@Suite struct ChrootNameTests {
    @Test(arguments: [
        ("fedora-39-x86_64", "fedora", "39", "x86_64", "fedora-39"),
        ("epel-9-aarch64", "epel", "9", "aarch64", "epel-9"),
        ("centos-stream-9-x86_64", "centos-stream", "9", "x86_64", "centos-stream-9"),
        ("opensuse-leap-15.5-x86_64", "opensuse-leap", "15.5", "x86_64", "opensuse-leap-15.5"),
        ("fedora-rawhide-i386", "fedora", "rawhide", "i386", "fedora-rawhide"),
        ("mageia-cauldron-x86_64", "mageia", "cauldron", "x86_64", "mageia-cauldron"),
        ("centos-stream+epel-next-9-x86_64", "centos-stream+epel-next", "9", "x86_64", "centos-stream+epel-next-9"),
        ("rhel7-7.1-ppc64le", "rhel7", "7.1", "ppc64le", "rhel7-7.1"),
    ])
    func parses(raw: String, os: String, version: String, arch: String, nameRelease: String) throws {
        let chroot = try #require(ChrootName(raw))
        #expect(chroot.raw == raw)
        #expect(chroot.os == os)
        #expect(chroot.version == version)
        #expect(chroot.arch == arch)
        #expect(chroot.nameRelease == nameRelease)
        #expect(chroot.description == raw)
        #expect(ChrootName(os: os, version: version, arch: arch) == chroot)
    }

    @Test(arguments: [
        "", "fedora", "fedora-39", "fedora--x86_64", "-39-x86_64", "fedora-39-", "fedora-39-x86 64",
        "fedora-39-x86_64/..", "fedora-../..-x", "fedora-39-x86_64\n", "fédora-39-x86_64",
    ])
    func rejects(raw: String) {
        #expect(ChrootName(raw) == nil)
    }

    @Test func composedNameMustRoundTrip() {
        // A version containing "-" would re-split differently.
        #expect(ChrootName(os: "fedora", version: "3-9", arch: "x86_64") == nil)
    }

    @Test(arguments: [
        ("fedora-41-x86_64", ".fc41"),
        ("fedora-39-aarch64", ".fc39"),
        ("epel-9-x86_64", ".el9"),
        ("epel-8-x86_64", ".el8"),
        ("centos-stream-9-x86_64", ".el9"),
        ("centos-stream-10-x86_64", ".el10"),
    ])
    func distTags(raw: String, tag: String) throws {
        #expect(try #require(ChrootName(raw)).distTag == tag)
    }

    @Test(arguments: [
        "fedora-rawhide-x86_64", "opensuse-leap-15.5-x86_64", "mageia-9-x86_64", "fedora-eln-x86_64",
        "opensuse-tumbleweed-x86_64", "rhel7-7.1-x86_64",
    ])
    func noDistTag(raw: String) throws {
        #expect(try #require(ChrootName(raw)).distTag == nil)
    }

    @Test func rawhideDistTagNeedsItsReleaseNumber() throws {
        let rawhide = try #require(ChrootName("fedora-rawhide-x86_64"))
        #expect(rawhide.distTag(rawhideRelease: 44) == ".fc44")
        #expect(try #require(ChrootName("epel-9-x86_64")).distTag(rawhideRelease: 44) == ".el9")
    }

    // copr-protocol.md §6 and upstream test_generate_repo_url.
    @Test(arguments: [
        ("fedora-39-x86_64", "fedora-$releasever-$basearch"),
        ("fedora-rawhide-x86_64", "fedora-$releasever-$basearch"),
        ("centos-stream-9-x86_64", "centos-stream-$releasever-$basearch"),
        ("opensuse-leap-15.5-x86_64", "opensuse-leap-$releasever-$basearch"),
        ("mageia-9-x86_64", "mageia-$releasever-$basearch"),
        ("mageia-cauldron-x86_64", "mageia-cauldron-$basearch"),
        ("epel-9-x86_64", "epel-9-$basearch"),
        ("rhel7-7.1-x86_64", "rhel7-7.1-$basearch"),
        ("opensuse-tumbleweed-x86_64", "opensuse-tumbleweed-$basearch"),
    ])
    func repoPathComponent(raw: String, expected: String) throws {
        #expect(try #require(ChrootName(raw)).repoPathComponent() == expected)
    }

    @Test func repoPathComponentWithExplicitArch() throws {
        #expect(
            try #require(ChrootName("rhel7-7.1-x86_64")).repoPathComponent(explicitArch: "i386") == "rhel7-7.1-i386"
        )
        #expect(
            try #require(ChrootName("fedora-39-x86_64")).repoPathComponent(explicitArch: "i386")
                == "fedora-$releasever-i386"
        )
        #expect(
            try #require(ChrootName("rhel7-7.1-x86_64")).repoPathComponent(explicitArch: "ppc64le")
                == "rhel7-7.1-ppc64le"
        )
    }

    @Test func multilib() throws {
        let x86 = try #require(ChrootName("fedora-39-x86_64"))
        #expect(x86.multilibArch == "i386")
        #expect(x86.multilibCounterpart == ChrootName("fedora-39-i386"))
        #expect(try #require(ChrootName("fedora-39-aarch64")).multilibCounterpart == nil)
        #expect(try #require(ChrootName("fedora-39-i386")).multilibArch == nil)
    }

    @Test func ordering() {
        let names = [
            "fedora-rawhide-x86_64", "fedora-39-x86_64", "epel-9-x86_64", "fedora-9-x86_64",
            "fedora-39-aarch64", "opensuse-leap-15.6-x86_64", "opensuse-leap-15.5-x86_64", "epel-10-x86_64",
        ]
        let sorted = names.compactMap(ChrootName.init).sorted().map(\.raw)
        #expect(
            sorted == [
                "epel-9-x86_64", "epel-10-x86_64",
                "fedora-9-x86_64", "fedora-39-aarch64", "fedora-39-x86_64", "fedora-rawhide-x86_64",
                "opensuse-leap-15.5-x86_64", "opensuse-leap-15.6-x86_64",
            ]
        )
    }
}

@Suite struct ChrootGlobTests {
    @Test(arguments: [
        ("epel-*-i386", "epel-9-i386", true),
        ("epel-*-i386", "epel-10-i386", true),
        ("epel-*-i386", "epel-9-x86_64", false),
        ("epel-*-i386", "fedora-39-i386", false),
        ("fedora-2?-*", "fedora-23-x86_64", true),
        ("fedora-2?-*", "fedora-3-x86_64", false),
        ("fedora-2?-*", "fedora-233-x86_64", false),
        ("fedora-2[123]-*", "fedora-22-i386", true),
        ("fedora-2[123]-*", "fedora-24-i386", false),
        ("fedora-2[!123]-*", "fedora-24-i386", true),
        ("fedora-2[!123]-*", "fedora-22-i386", false),
        ("fedora-2[^123]-*", "fedora-24-i386", true),
        ("fedora-2[^123]-*", "fedora-21-i386", false),
        ("fedora-[0-9][0-9]-x86_64", "fedora-39-x86_64", true),
        ("fedora-[0-9][0-9]-x86_64", "fedora-rawhide-x86_64", false),
        ("fedora-[a-z]*", "fedora-rawhide-x86_64", true),
        ("*", "anything", true),
        ("*", "", true),
        ("", "", true),
        ("", "x", false),
        ("fedora-39-x86_64", "fedora-39-x86_64", true),
        ("fedora-39-x86_64", "fedora-39-x86_64x", false),
        ("fedora-39", "fedora-39-x86_64", false),  // whole-string match, not prefix
        ("*-x86_64", "fedora-39-x86_64", true),
        ("*x86_64*", "fedora-39-x86_64", true),
        ("f*a*-*-x*", "fedora-39-x86_64", true),
        ("*a*b", "aaab", true),
        ("*a*b", "aaabc", false),
        ("?", "", false),
        ("FEDORA-*", "fedora-39-x86_64", false),  // case-sensitive
        ("[]]x", "]x", true),
        ("[a-]x", "-x", true),
        ("[a-]x", "bx", false),
        ("fedora-[", "fedora-[", true),  // unclosed bracket is literal
        ("fedora-[", "fedora-x", false),
        ("epel-?-*", "epel-9-ppc64le", true),
    ])
    func matches(pattern: String, name: String, expected: Bool) {
        #expect(ChrootGlob.matches(pattern: pattern, name) == expected)
    }

    @Test func isPattern() {
        #expect(ChrootGlob.isPattern("epel-*-i386"))
        #expect(ChrootGlob.isPattern("fedora-2?-x"))
        #expect(ChrootGlob.isPattern("fedora-2[12]-x"))
        #expect(!ChrootGlob.isPattern("fedora-39-x86_64"))
    }

    @Test func longPatternDoesNotBlowUp() {
        let name = String(repeating: "a", count: 200)
        let pattern = String(repeating: "*a", count: 50) + "b"
        #expect(!ChrootGlob.matches(pattern: pattern, name))
    }
}

@Suite struct ChrootSelectionTests {
    let active = [
        "fedora-21-x86_64", "fedora-22-x86_64", "fedora-23-x86_64", "fedora-24-x86_64", "fedora-25-x86_64",
        "fedora-21-i386", "fedora-25-i386", "fedora-39-x86_64",
        "epel-8-i386", "epel-9-i386", "epel-9-x86_64",
    ]

    func select(_ chroots: [String]?, _ excludes: [String]? = nil) throws(ValidationError) -> [String] {
        try ChrootGlob.select(
            active: self.active,
            chroots: chroots,
            excludeChroots: excludes,
            projectFullName: "tester/proj"
        )
    }

    @Test func nilOrEmptyMeansAllActiveSorted() throws {
        let all = self.active.sorted()
        #expect(try self.select(nil) == all)
        #expect(try self.select([]) == all)
        #expect(try self.select(nil, []) == all)
    }

    @Test func exactNames() throws {
        #expect(try self.select(["fedora-39-x86_64", "epel-9-x86_64"]) == ["epel-9-x86_64", "fedora-39-x86_64"])
    }

    @Test func upstreamGlobExampleEpelI386() throws {
        #expect(try self.select(["epel-*-i386"]) == ["epel-8-i386", "epel-9-i386"])
    }

    @Test func upstreamGlobExampleFedora2xMinus21To23() throws {
        #expect(
            try self.select(["fedora-2?-*"], ["fedora-2[123]-*"])
                == ["fedora-24-x86_64", "fedora-25-i386", "fedora-25-x86_64"]
        )
    }

    @Test func excludeOnlyStartsFromAllActive() throws {
        #expect(try self.select(nil, ["fedora-*", "epel-8-*"]) == ["epel-9-i386", "epel-9-x86_64"])
        #expect(try self.select([], ["*-i386"]).allSatisfy { !$0.hasSuffix("-i386") })
    }

    @Test func overlappingPatternsAreDeduplicated() throws {
        #expect(try self.select(["epel-9-*", "*-9-x86_64", "epel-9-x86_64"]) == ["epel-9-i386", "epel-9-x86_64"])
    }

    @Test func patternMatchingNothingIsAnError() {
        #expect(
            throws: ValidationError(
                field: "chroots",
                message: "'fedora-99-x86_64' is not a valid choice for this field."
            )
        ) {
            try self.select(["fedora-39-x86_64", "fedora-99-x86_64"])
        }
        #expect(throws: ValidationError(field: "chroots", message: "'rhel-*' is not a valid choice for this field.")) {
            try self.select(["rhel-*"])
        }
        #expect(
            throws: ValidationError(
                field: "exclude_chroots",
                message: "'mageia-*' is not a valid choice for this field."
            )
        ) {
            try self.select(nil, ["mageia-*"])
        }
    }

    @Test func excludingEverythingIsAnError() {
        #expect(
            throws: ValidationError(field: "exclude_chroots", message: "No chroot of tester/proj is left to build in.")
        ) {
            try self.select(["epel-9-*"], ["epel-*"])
        }
    }

    @Test func projectWithoutActiveChroots() {
        var error: ValidationError? = nil
        do throws(ValidationError) {
            _ = try ChrootGlob.select(active: [], chroots: nil, excludeChroots: nil, projectFullName: "@grp/proj")
        } catch let e {
            error = e
        }
        #expect(error?.field == nil)
        #expect(error?.message == "Can't create build - project @grp/proj has no active chroots")
        #expect(error?.message.contains("@grp/proj has no active chroots") == true)
    }
}
