import HTTPCore
import Testing

@Suite("Router")
struct RouterTests {
    private func router() -> Router<String> {
        var r = Router<String>()
        r.add(["GET"], "/", "root")
        r.add(["GET", "HEAD"], "/api_3/project/list", "project-list")
        r.add(["GET"], "/api_3/build/:id", "build-get")
        r.add(["POST"], "/api_3/build/:id", "build-post")
        r.add(["GET"], "/api_3/build/:id/chroot/:chroot", "build-chroot")
        r.add(["GET"], "/results/:owner/:project/*path", "results")
        r.add(["GET"], "/api_3/build/list", "never: the parameter route above wins")
        return r
    }

    private func match(_ method: String, _ path: String) -> Router<String>.Match? {
        guard let segments = Router<String>.decodeSegments(Substring(path)) else { return nil }
        return self.router().match(method: method, pathSegments: segments)
    }

    @Test func literalsAndRoot() {
        #expect(self.match("GET", "/")?.value == "root")
        #expect(self.match("GET", "")?.value == "root")
        #expect(self.match("GET", "/api_3/project/list")?.value == "project-list")
        #expect(self.match("HEAD", "/api_3/project/list")?.value == "project-list")
        #expect(self.match("GET", "/api_3/project/list")?.parameters.isEmpty == true)
        #expect(self.match("GET", "/api_3/project") == nil)
        #expect(self.match("GET", "/api_3/project/list/more") == nil)
        #expect(self.match("GET", "/API_3/project/list") == nil)  // literals are case-sensitive
    }

    @Test func parameters() throws {
        let m = try #require(self.match("GET", "/api_3/build/42"))
        #expect(m.value == "build-get")
        #expect(m.parameters == ["id": "42"])
        let c = try #require(self.match("GET", "/api_3/build/42/chroot/fedora-rawhide-x86_64"))
        #expect(c.value == "build-chroot")
        #expect(c.parameters == ["id": "42", "chroot": "fedora-rawhide-x86_64"])
        #expect(self.match("GET", "/api_3/build//chroot/x") == nil)  // a parameter is never empty
    }

    @Test func methodsSelectRoutes() {
        #expect(self.match("POST", "/api_3/build/7")?.value == "build-post")
        #expect(self.match("DELETE", "/api_3/build/7") == nil)
        #expect(self.match("POST", "/") == nil)
    }

    @Test func firstMatchingRouteWins() {
        #expect(self.match("GET", "/api_3/build/list")?.value == "build-get")
        #expect(self.match("GET", "/api_3/build/list")?.parameters["id"] == "list")
    }

    @Test func trailingSlashIsIgnored() {
        #expect(self.match("GET", "/api_3/build/1/")?.value == "build-get")
        #expect(self.match("GET", "/api_3/build/1/")?.parameters == ["id": "1"])
        #expect(self.match("GET", "/api_3/project/list/")?.value == "project-list")
        #expect(self.match("GET", "/api_3/build/1//") == nil)  // only one trailing slash
    }

    @Test func restParameterTakesTheRemainingSegments() throws {
        let m = try #require(self.match("GET", "/results/alice/tools/fedora-40-x86_64/00001-foo/foo.rpm"))
        #expect(m.value == "results")
        #expect(m.parameters["owner"] == "alice")
        #expect(m.parameters["project"] == "tools")
        #expect(m.parameters["path"] == "fedora-40-x86_64/00001-foo/foo.rpm")
        #expect(self.match("GET", "/results/alice/tools/one")?.parameters["path"] == "one")
        #expect(self.match("GET", "/results/alice/tools") == nil)  // needs at least one segment
        #expect(self.match("GET", "/results/alice/tools/") == nil)
    }

    @Test func parametersArePercentDecoded() throws {
        let m = try #require(self.match("GET", "/api_3/build/a%20b%2Fc"))
        #expect(m.parameters["id"] == "a b/c")  // %2F stays inside its segment
        let r = try #require(self.match("GET", "/results/%40group/p%C3%A9/x%2By"))
        #expect(r.parameters["owner"] == "@group")
        #expect(r.parameters["project"] == "pé")
        #expect(r.parameters["path"] == "x+y")  // '+' is literal in a path
    }

    @Test func decodeSegments() {
        #expect(Router<String>.decodeSegments("/a/b") == ["a", "b"])
        #expect(Router<String>.decodeSegments("/a/b/") == ["a", "b", ""])
        #expect(Router<String>.decodeSegments("/") == [""])
        #expect(Router<String>.decodeSegments("/a//b") == ["a", "", "b"])
        #expect(Router<String>.decodeSegments("/%7Euser/x%2Fy") == ["~user", "x/y"])
        #expect(Router<String>.decodeSegments("/bad%2") == nil)
        #expect(Router<String>.decodeSegments("/bad%zz") == nil)
        #expect(Router<String>.decodeSegments("/bad%FF") == nil)  // not UTF-8
    }
}
