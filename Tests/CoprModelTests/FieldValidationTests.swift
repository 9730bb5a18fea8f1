import Testing

@testable import CoprModel

@Suite struct FieldValidationTests {
    @Test(arguments: [
        "http://example.com", "https://example.com/", "https://copr.fedorainfracloud.org/coprs/",
        "HTTPS://Example.COM/x?y=1#z", "http://localhost:8080/", "http://127.0.0.1:8765/results",
        "https://user@example.com/", "http://[::1]:8080/", "https://žluťoučký.cz/", "http://example.com.",
    ])
    func validHomepages(url: String) throws {
        try FieldValidation.validateHomepage(url)
    }

    @Test(arguments: [
        "", "example.com", "ftp://example.com/", "http://", "https:///path", "http://exa mple.com/",
        "http://example.com/ path", "javascript:alert(1)", "http://-bad-.com/", "http://a..b/",
        "http://example.com:port/", "http://example.com:123456/", "http://[zz]/", "mailto:a@b.cz",
        "http://example.com/\n",
    ])
    func invalidHomepages(url: String) {
        #expect(throws: ValidationError(field: "homepage", message: "Invalid URL")) {
            try FieldValidation.validateHomepage(url)
        }
    }

    @Test(arguments: [
        "someone@example.com", "first.last+tag@sub.example.org", "https://example.com/contact",
        "http://bugzilla.example.com/", "a@b.cz",
    ])
    func validContacts(contact: String) throws {
        try FieldValidation.validateContact(contact)
    }

    @Test(arguments: [
        "", "someone", "someone@", "@example.com", "someone@localhost", "a b@example.com", "a@@example.com",
        "a@example..com", ".a@example.com", "ftp://example.com", "someone at example dot com",
    ])
    func invalidContacts(contact: String) {
        #expect(throws: ValidationError(field: "contact", message: "Contact must be email address or URL")) {
            try FieldValidation.validateContact(contact)
        }
    }

    @Test(arguments: [
        "https://example.com/repo/$chroot/", "http://example.com/x?priority=10", "copr://tester/proj",
        "copr://@grp/proj", "copr://tester/proj:custom:x?priority=5",
    ])
    func validRepoURLs(url: String) throws {
        try FieldValidation.validateRepoURL(url)
    }

    @Test(arguments: [
        "copr://tester", "copr://tester/", "copr:///proj", "ftp://example.com/", "example.com/repo", "http://",
    ])
    func invalidRepoURLs(url: String) {
        #expect(throws: ValidationError.self) { try FieldValidation.validateRepoURL(url) }
        #expect(
            throws: ValidationError(
                field: "runtime_dependencies",
                message:
                    "A list of http[s] URLs separated by whitespace characters is needed ('\(url)' doesn't seem to be a valid URL)."
            )
        ) {
            try FieldValidation.validateRepoURL(url, field: "runtime_dependencies")
        }
    }
}
