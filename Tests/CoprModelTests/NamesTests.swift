import Testing

@testable import CoprModel

private func projectNameError(_ s: String) -> ValidationError? {
    do {
        try Names.validateProjectName(s)
        return nil
    } catch {
        return error
    }
}

private func dirError(_ s: String) -> ValidationError? {
    do {
        _ = try CoprDirName(s)
        return nil
    } catch {
        return error
    }
}

@Suite struct ProjectNameTests {
    @Test(arguments: ["golden", "hello-copr", "foo_bar", "pytest-8.1.1", "a", "X11", "1a", "a.b-c_d", "proj2024"])
    func valid(name: String) {
        #expect(projectNameError(name) == nil)
    }

    @Test(arguments: ["foo bar", "foo/bar", "foo:bar", "@grp", "a+b", "naïve", "žluťoučký", "foo\n", "a$b", "ü"])
    func badCharacters(name: String) {
        #expect(
            projectNameError(name)
                == ValidationError(
                    field: "name",
                    message: "Name must contain only letters, digits, underscores, dashes and dots."
                )
        )
    }

    @Test(arguments: ["123", "0", "2024"])
    func justNumber(name: String) {
        #expect(
            projectNameError(name) == ValidationError(field: "name", message: "Project's name can not be just number.")
        )
    }

    @Test func emptyAndTooLong() {
        #expect(projectNameError("") == ValidationError(field: "name", message: "This field is required."))
        #expect(projectNameError(String(repeating: "a", count: 100)) == nil)
        #expect(
            projectNameError(String(repeating: "a", count: 101))
                == ValidationError(field: "name", message: "Field cannot be longer than 100 characters.")
        )
    }

    @Test(arguments: [".", "..", ".hidden"])
    func leadingDotIsRefused(name: String) {
        #expect(projectNameError(name) == ValidationError(field: "name", message: "Name can not start with a dot."))
    }

    @Test func customField() {
        #expect(throws: ValidationError(field: "projectname", message: "Project's name can not be just number.")) {
            try Names.validateProjectName("42", field: "projectname")
        }
    }
}

@Suite struct UserAndPackageNameTests {
    @Test(arguments: ["tester", "user1", "a.b", "a_b", "a-b", "A", "x" + String(repeating: "y", count: 99)])
    func validUserNames(name: String) throws {
        try Names.validateUserName(name)
    }

    @Test(arguments: ["", ".a", "-a", "a b", "a/b", "@grp", "a:b", "ü", String(repeating: "y", count: 101)])
    func invalidUserNames(name: String) {
        #expect(throws: ValidationError.self) { try Names.validateUserName(name) }
    }

    @Test(arguments: ["hello", "hello-copr", "python3-foo", "libstdc++", "gtk+", "foo_bar", "foo.bar", "0ad", "R"])
    func validPackageNames(name: String) throws {
        try Names.validatePackageName(name)
    }

    @Test(arguments: ["", ".foo", "-foo", "foo bar", "foo/bar", "foo:bar", "föo", String(repeating: "p", count: 201)])
    func invalidPackageNames(name: String) {
        #expect(throws: ValidationError.self) { try Names.validatePackageName(name) }
    }

    @Test func packageNameMessageNamesTheRule() {
        #expect(
            throws: ValidationError(
                field: "package_name",
                message: "Please enter a valid package name in ^[-+_.a-zA-Z0-9]+$"
            )
        ) {
            try Names.validatePackageName("foo bar")
        }
    }
}

@Suite struct OwnerNameTests {
    @Test func user() throws {
        let owner = try #require(OwnerName("tester"))
        #expect(owner.raw == "tester")
        #expect(!owner.isGroup)
        #expect(owner.name == "tester")
        #expect(owner.repoIdPart == "tester")
        #expect(owner.webPathPart == "tester")
        #expect(owner == OwnerName.user("tester"))
    }

    @Test func group() throws {
        let owner = try #require(OwnerName("@grp"))
        #expect(owner.raw == "@grp")
        #expect(owner.isGroup)
        #expect(owner.name == "grp")
        #expect(owner.repoIdPart == "group_grp")
        #expect(owner.webPathPart == "g/grp")
        #expect(owner == OwnerName.group("grp"))
        #expect(OwnerName.group("@grp") == nil)
        #expect(OwnerName.user("@grp") == nil)
    }

    @Test(arguments: ["", "@", "@@grp", "a b", "-x", "@.x", "a/b", "a@b"])
    func invalid(raw: String) {
        #expect(OwnerName(raw) == nil)
    }
}

@Suite struct CoprDirNameTests {
    @Test func mainDirectory() throws {
        let dir = try CoprDirName("proj")
        #expect(dir.project == "proj")
        #expect(dir.suffix == nil)
        #expect(dir.isMain)
        #expect(!dir.isPullRequest)
        #expect(dir.name == "proj")
    }

    // copr-api-behaviour.md §1 4.3 and upstream's test_custom_dir_validation / test_coprdir_suffix_validation.
    @Test(arguments: [
        ("test:custom:subdir", "custom:subdir"),
        ("test:custom:123", "custom:123"),
        ("test:custom:žluťoučký", "custom:žluťoučký"),
        ("test:custom:foo-bar", "custom:foo-bar"),
        ("test:custom:a:b", "custom:a:b"),
        ("test:pr:13", "pr:13"),
        ("foocopr:pr:frostyx-foo-123", "pr:frostyx-foo-123"),
        ("pytest-8.1.1:pr:123", "pr:123"),
    ])
    func validSideDirectories(name: String, suffix: String) throws {
        let dir = try CoprDirName(name)
        #expect(dir.suffix == suffix)
        #expect(dir.name == name)
        #expect(!dir.isMain)
        #expect(dir.isPullRequest == suffix.hasPrefix("pr:"))
    }

    @Test(arguments: [
        "test:custom:", "test:custom:.", "test:custom:@", "test:custom:foo-", "test:custom:a_b",
        "test:pr:13a", "test:pr:13:2", "test:pr:", "test:pr:foo", "test:pr:frostyx-foo-123-bar",
        "test:pr:frostyx:123", "foocopr:pr:fork-thrnciar-rpms-python3.13-145",
        "test:bar:baz", "test:", "test:custom", "test:pr",
    ])
    func invalidSideDirectories(name: String) {
        let error = dirError(name)
        #expect(error != nil)
        #expect(error?.field == "project_dirname")
    }

    @Test func invalidProjectPart() {
        #expect(dirError("123:custom:x")?.message == "Project's name can not be just number.")
        #expect(dirError(":custom:x")?.message == "This field is required.")
        #expect(dirError("a b:custom:x") != nil)
    }

    @Test func messagesFollowUpstream() {
        #expect(
            dirError("test:bar:baz")?.message
                == "Please use directory format test:custom:<SUFFIX_OF_CHOICE> or test:pr:<ID> (for automatically removed directories)"
        )
        #expect(
            dirError("test:custom:@")?.message
                == "Wrong directory 'test:custom:@' specified. Directory name can consist of alpha-numeric strings separated by colons."
        )
    }
}
