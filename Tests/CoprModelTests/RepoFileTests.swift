import Testing

@testable import CoprModel

private func owner(_ raw: String) -> OwnerName {
    guard let owner = OwnerName(raw) else {
        Issue.record("bad owner \(raw)")
        return OwnerName("invalid")!
    }
    return owner
}

private func chroot(_ raw: String) -> ChrootName {
    guard let chroot = ChrootName(raw) else {
        Issue.record("bad chroot \(raw)")
        return ChrootName("x-0-x")!
    }
    return chroot
}

@Suite struct RepoFileTests {
    /// The exact example of copr-protocol.md §6 "Repo file the server must return".
    @Test func userProjectMatchesTheProtocolExample() {
        let request = RepoFileRequest(
            hostname: "127.0.0.1:8765",
            resultsURL: "http://127.0.0.1:8765/results",
            owner: owner("tester"),
            projectName: "proj",
            chroot: chroot("fedora-39-x86_64")
        )
        let expected = """
            [copr:127.0.0.1:tester:proj]
            name=Copr repo for proj owned by tester
            baseurl=http://127.0.0.1:8765/results/tester/proj/fedora-$releasever-$basearch/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=http://127.0.0.1:8765/results/tester/proj/pubkey.gpg
            repo_gpgcheck=0
            enabled=1
            enabled_metadata=1

            """
        let text = RepoFile.render(request)
        #expect(text == expected)
        // dnf's copr plugin slices the first line as line[1:-2]: it must be exactly "[copr:...]\n", LF only.
        #expect(text.hasPrefix("[copr:127.0.0.1:tester:proj]\n"))
        #expect(!text.contains("\r"))
    }

    @Test func groupProjectWithHotfixesAndPriority() {
        let request = RepoFileRequest(
            hostname: "copr.example.org",
            resultsURL: "https://copr.example.org/results/",
            owner: owner("@grp"),
            projectName: "gproj",
            chroot: chroot("epel-9-x86_64"),
            moduleHotfixes: true,
            repoPriority: 5
        )
        let expected = """
            [copr:copr.example.org:group_grp:gproj]
            name=Copr repo for gproj owned by @grp
            baseurl=https://copr.example.org/results/@grp/gproj/epel-9-$basearch/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=https://copr.example.org/results/@grp/gproj/pubkey.gpg
            repo_gpgcheck=0
            enabled=1
            enabled_metadata=1
            module_hotfixes=1
            priority=5

            """
        #expect(RepoFile.render(request) == expected)
    }

    @Test func groupProjectWithMultilibAndDependencies() {
        let request = RepoFileRequest(
            hostname: "localhost:8765",
            resultsURL: "http://localhost:8765/results",
            owner: owner("@grp"),
            projectName: "gproj",
            dirName: "gproj:custom:next",
            chroot: chroot("fedora-rawhide-x86_64"),
            multilibArch: "i386",
            runtimeDependencies: [
                .url("http://example1.com/foo/$chroot?priority=10&foo=bar"),
                .project(RepoFileProjectDependency(owner: owner("user1"), projectName: "foocopr", repoPriority: 20)),
                .missingProject("copr://user2/nonexisting"),
                .project(
                    RepoFileProjectDependency(owner: owner("@group1"), projectName: "groupcopr1", moduleHotfixes: true)
                ),
                .url("https://url.to/external/repo"),
            ]
        )
        let expected = """
            [copr:localhost:group_grp:gproj:custom:next]
            name=Copr repo for gproj:custom:next owned by @grp
            baseurl=http://localhost:8765/results/@grp/gproj:custom:next/fedora-$releasever-$basearch/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=http://localhost:8765/results/@grp/gproj/pubkey.gpg
            repo_gpgcheck=0
            enabled=1
            enabled_metadata=1

            [copr:localhost:group_grp:gproj:custom:next:ml]
            name=Copr repo for gproj:custom:next owned by @grp (i386)
            baseurl=http://localhost:8765/results/@grp/gproj:custom:next/fedora-$releasever-i386/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=http://localhost:8765/results/@grp/gproj/pubkey.gpg
            repo_gpgcheck=0
            cost=1100
            enabled=1
            enabled_metadata=1

            [coprdep:localhost:user1:foocopr]
            name=Copr localhost/@grp/gproj runtime dependency #1 - user1/foocopr
            baseurl=http://localhost:8765/results/user1/foocopr/fedora-$releasever-$basearch/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=http://localhost:8765/results/user1/foocopr/pubkey.gpg
            repo_gpgcheck=0
            enabled=1
            enabled_metadata=1
            priority=20

            [coprdep:localhost:group_group1:groupcopr1]
            name=Copr localhost/@grp/gproj runtime dependency #2 - @group1/groupcopr1
            baseurl=http://localhost:8765/results/@group1/groupcopr1/fedora-$releasever-$basearch/
            type=rpm-md
            skip_if_unavailable=True
            gpgcheck=1
            gpgkey=http://localhost:8765/results/@group1/groupcopr1/pubkey.gpg
            repo_gpgcheck=0
            enabled=1
            enabled_metadata=1
            module_hotfixes=1

            [coprdep:http_example1_com_foo_chroot_priority_10_foo_bar]
            name=Copr localhost/@grp/gproj external runtime dependency #1 - http_example1_com_foo_chroot_priority_10_foo_bar
            baseurl=http://example1.com/foo/fedora-rawhide-x86_64?foo=bar
            type=rpm-md
            skip_if_unavailable=True
            repo_gpgcheck=0
            gpgcheck=0
            enabled=1
            enabled_metadata=1
            priority=10

            [coprdep:https_url_to_external_repo]
            name=Copr localhost/@grp/gproj external runtime dependency #2 - https_url_to_external_repo
            baseurl=https://url.to/external/repo
            type=rpm-md
            skip_if_unavailable=True
            repo_gpgcheck=0
            gpgcheck=0
            enabled=1
            enabled_metadata=1

            # This repository is configured to have a runtime dependency on a Copr project user2/nonexisting but that doesn't exist.

            """
        let text = RepoFile.render(request)
        #expect(text == expected)
    }

    @Test func sectionIdsAreWhatTheDnfPluginLooksFor() {
        // The plugin looks for copr:{hub host without port}:{owner with @ -> group_}:{project}.
        let request = RepoFileRequest(
            hostname: "127.0.0.1:8765",
            resultsURL: "http://127.0.0.1:8765/results",
            owner: owner("@grp"),
            projectName: "gproj",
            chroot: chroot("fedora-39-x86_64")
        )
        let firstLine = RepoFile.render(request).split(separator: "\n", omittingEmptySubsequences: false).first
        #expect(firstLine == "[copr:127.0.0.1:group_grp:gproj]")
    }

    @Test func valuesCannotInjectLines() {
        let request = RepoFileRequest(
            hostname: "h",
            resultsURL: "http://h/results",
            owner: owner("tester"),
            projectName: "proj",
            chroot: chroot("fedora-39-x86_64"),
            runtimeDependencies: [.url("http://evil/\ngpgcheck=0")]
        )
        let lines = RepoFile.render(request).split(separator: "\n")
        #expect(lines.filter { $0 == "gpgcheck=0" }.count == 1)  // only the dependency's own line
    }

    @Test func hostnameForRepoID() {
        #expect(RepoFile.hostnameForRepoID("127.0.0.1:8765") == "127.0.0.1")
        #expect(RepoFile.hostnameForRepoID("localhost") == "localhost")
        #expect(RepoFile.hostnameForRepoID("copr.example.org:443") == "copr.example.org")
        #expect(RepoFile.hostnameForRepoID("[::1]:8080") == "[::1]")
        #expect(RepoFile.hostnameForRepoID("[::1]") == "[::1]")
    }

    @Test func fileName() {
        #expect(RepoFile.fileName(owner: owner("tester"), dirName: "golden") == "tester-golden.repo")
        #expect(RepoFile.fileName(owner: owner("@grp"), dirName: "p:custom:x") == "@grp-p:custom:x.repo")
    }

    @Test func matchChroot() {
        let enabled = ["fedora-39-x86_64", "fedora-39-aarch64", "fedora-390-x86_64", "epel-9-x86_64", "junk"]
        #expect(
            RepoFile.matchChroot(nameRelease: "fedora-39", arch: "x86_64", enabled: enabled)?.raw == "fedora-39-x86_64"
        )
        #expect(
            RepoFile.matchChroot(nameRelease: "fedora-39", arch: "aarch64", enabled: enabled)?.raw
                == "fedora-39-aarch64"
        )
        #expect(RepoFile.matchChroot(nameRelease: "fedora-39", arch: nil, enabled: enabled)?.raw == "fedora-39-aarch64")
        #expect(RepoFile.matchChroot(nameRelease: "fedora-39", arch: "", enabled: enabled)?.raw == "fedora-39-aarch64")
        #expect(RepoFile.matchChroot(nameRelease: "fedora-39", arch: "ppc64le", enabled: enabled) == nil)
        #expect(RepoFile.matchChroot(nameRelease: "fedora-3", arch: nil, enabled: enabled) == nil)
        // Debian's dnf copr plugin asks for epel-12 (copr-protocol.md §6).
        #expect(RepoFile.matchChroot(nameRelease: "epel-12", arch: "x86_64", enabled: enabled) == nil)
    }

    @Test func multilibArchRule() {
        let x86 = chroot("fedora-39-x86_64")
        let active = ["fedora-39-x86_64", "fedora-39-i386", "fedora-40-x86_64"]
        #expect(
            RepoFile.multilibArch(projectMultilib: true, requestedArch: "x86_64", chroot: x86, activeChroots: active)
                == "i386"
        )
        // Not multilib, no ?arch=, or no i386 counterpart: no :ml section.
        #expect(
            RepoFile.multilibArch(projectMultilib: false, requestedArch: "x86_64", chroot: x86, activeChroots: active)
                == nil
        )
        #expect(
            RepoFile.multilibArch(projectMultilib: true, requestedArch: nil, chroot: x86, activeChroots: active) == nil
        )
        #expect(
            RepoFile.multilibArch(
                projectMultilib: true,
                requestedArch: "x86_64",
                chroot: chroot("fedora-40-x86_64"),
                activeChroots: active
            ) == nil
        )
        #expect(
            RepoFile.multilibArch(
                projectMultilib: true,
                requestedArch: "aarch64",
                chroot: chroot("fedora-39-aarch64"),
                activeChroots: active + ["fedora-39-aarch64"]
            ) == nil
        )
    }

    @Test func errorDataHeader() {
        // base64 of {"available chroots": ["fedora-39-x86_64", "fedora-40-x86_64"]} (Python json.dumps spacing).
        #expect(
            RepoFile.errorDataHeaderValue(availableChroots: ["fedora-39-x86_64", "fedora-40-x86_64"])
                == "eyJhdmFpbGFibGUgY2hyb290cyI6IFsiZmVkb3JhLTM5LXg4Nl82NCIsICJmZWRvcmEtNDAteDg2XzY0Il19"
        )
        #expect(RepoFile.errorDataHeaderValue(availableChroots: []) == "eyJhdmFpbGFibGUgY2hyb290cyI6IFtdfQ==")
    }

    @Test func base64() {
        #expect(Base64.encode([]) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foo".utf8)) == "Zm9v")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode([0xFF, 0xFE, 0xFD]) == "//79")
    }

    @Test func jsonQuoting() {
        #expect(JSONText.quoted("a\"b\\c\nd\u{01}é") == "\"a\\\"b\\\\c\\nd\\u0001é\"")
    }
}

@Suite struct RepoURLTests {
    let rawhide = chroot("fedora-rawhide-x86_64")

    // Upstream test_pre_process_repo_url.
    @Test(arguments: [
        ("http://example1.com/foo/$chroot/", "http://example1.com/foo/fedora-rawhide-x86_64/"),
        ("copr://someuser/someproject", "http://backend/results/someuser/someproject/fedora-rawhide-x86_64/"),
        (
            "copr://someuser/someproject?foo=bar&baz=10",
            "http://backend/results/someuser/someproject/fedora-rawhide-x86_64/"
        ),
        ("http://example1.com/foo/$chroot?priority=10", "http://example1.com/foo/fedora-rawhide-x86_64"),
        (
            "http://example1.com/foo/$chroot?priority=10&foo=bar",
            "http://example1.com/foo/fedora-rawhide-x86_64?foo=bar"
        ),
        ("copr://user1/foocopr:custom:pr", "http://backend/results/user1/foocopr:custom:pr/fedora-rawhide-x86_64/"),
        ("http://x/$distname/$chroot/", "http://x/fedora-rawhide/fedora-rawhide-x86_64/"),
        ("http://x/a?foo=1&priority=3#frag", "http://x/a?foo=1#frag"),
    ])
    func expand(url: String, expected: String) {
        #expect(RepoURLs.expand(url, chroot: self.rawhide, resultsURL: "http://backend/results/") == expected)
    }

    // Upstream test_parse_repo_params.
    @Test func priority() {
        #expect(RepoURLs.priority(of: "copr://foo/bar") == nil)
        #expect(RepoURLs.priority(of: "copr://foo/bar?priority=10") == 10)
        #expect(RepoURLs.priority(of: "copr://foo/bar?priority=10&unexp1=baz&unexp2=qux") == 10)
        #expect(RepoURLs.priority(of: "http://example1.com/foo?priority=10") == 10)
        #expect(RepoURLs.priority(of: "http://example1.com/foo?a=1&priority=7") == 7)
        #expect(RepoURLs.priority(of: "http://example1.com/foo?priority=high") == nil)
        #expect(RepoURLs.priority(of: "http://example1.com/foo#priority=3") == nil)
    }

    @Test func slugMatchesUpstreamGenerateRepoName() {
        #expect(RepoURLs.slug("https://url.to/external/repo") == "https_url_to_external_repo")
        #expect(RepoURLs.slug("http://some.url/") == "http_some_url")
        #expect(RepoURLs.slug("__a--b__") == "a_b")
        #expect(RepoURLs.slug("http://ž.cz/") == "http_cz")
    }

    @Test func repoReference() throws {
        #expect(RepoReference("copr://tester/proj") == .copr(owner: owner("tester"), dir: try CoprDirName("proj")))
        #expect(
            RepoReference("copr://@grp/proj?priority=3") == .copr(owner: owner("@grp"), dir: try CoprDirName("proj"))
        )
        #expect(
            RepoReference("copr://tester/proj:custom:x/extra")
                == .copr(owner: owner("tester"), dir: try CoprDirName("proj:custom:x"))
        )
        #expect(RepoReference("https://example.com/repo") == .url("https://example.com/repo"))
        #expect(RepoReference("copr://tester") == nil)
        #expect(RepoReference("copr://tester/") == nil)
        #expect(RepoReference("copr://bad owner/proj") == nil)
        #expect(RepoReference("/srv/repo") == nil)
        #expect(RepoReference("://x") == nil)
    }
}
