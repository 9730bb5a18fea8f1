import Foundation
import Testing

@testable import Tickets

@Suite("Pool configuration and resource data")
struct ConfigurationTests {
    @Test("pool configuration decodes snake_case JSON with defaults")
    func decodePool() throws {
        let json = """
            {"name": "copr_x86_64", "tags": ["arch_x86_64", "arch_i386"], "max": 10, "max_prealloc": 2,
             "allocate_command": "/usr/libexec/koper/vm-new", "release_command": "/usr/libexec/koper/vm-delete",
             "reuse_max_count": 4,
             "static_hosts": ["builder@10.0.0.5:2222", {"host": "10.0.0.6", "host_key": "/etc/koper/b6.pub"}]}
            """
        let pool = try JSONDecoder().decode(PoolConfig.self, from: Data(json.utf8))
        #expect(pool.name == "copr_x86_64")
        #expect(pool.tags == ["arch_x86_64", "arch_i386"])
        #expect(pool.max == 10 && pool.maxPrealloc == 2)
        #expect(pool.reuseMaxCount == 4)
        #expect(pool.reuseMaxSeconds == 3600 && pool.checkInterval == 60 && pool.allocateTimeout == 600)
        #expect(pool.checkCommand == nil)
        #expect(
            pool.staticHosts == [
                ResourceData(host: "10.0.0.5", port: 2222, user: "builder"),
                ResourceData(host: "10.0.0.6", hostPublicKey: "/etc/koper/b6.pub"),
            ]
        )
        #expect(pool.capacity == 2)
        try pool.validate()

        let encoded = try JSONEncoder().encode(pool)
        #expect(try JSONDecoder().decode(PoolConfig.self, from: encoded) == pool)
    }

    @Test("allocate hook output: JSON object")
    func hookJSON() throws {
        let output =
            #"{"host": "192.0.2.7", "port": 22, "user": "root", "host_key": "ssh-ed25519 AAAA", "key": "/k", "zone": 3}"#
        let data = try #require(try ResourceData.parse(hookOutput: Array(output.utf8)))
        #expect(data.host == "192.0.2.7" && data.port == 22 && data.user == "root")
        #expect(data.hostPublicKey == "ssh-ed25519 AAAA")
        #expect(data.extra == ["key": "/k", "zone": "3"])
        #expect(try ResourceData(jsonText: data.jsonText) == data)
    }

    @Test("allocate hook output: plain host names, last line wins")
    func hookPlain() throws {
        func parse(_ text: String) throws -> ResourceData? {
            try ResourceData.parse(hookOutput: Array(text.utf8))
        }
        #expect(try parse("booting...\nwaiting for ssh\n192.0.2.9\n") == ResourceData(host: "192.0.2.9"))
        #expect(
            try parse("mock@builder.example:2200") == ResourceData(host: "builder.example", port: 2200, user: "mock")
        )
        #expect(try parse("[2001:db8::1]:2222") == ResourceData(host: "2001:db8::1", port: 2222))
        #expect(try parse("2001:db8::2") == ResourceData(host: "2001:db8::2"))
        #expect(try parse("log line\n{\"host\": \"h\"}") == ResourceData(host: "h"))
        #expect(try parse("  \n") == nil)
    }

    @Test("unusable resource data is refused")
    func invalidData() {
        for text in [
            "-oProxyCommand=x", "host name", "h:0", "h:70000", "bad user@h", "{\"port\": 22}", "{\"host\": 5}", "{",
        ] {
            #expect(throws: TicketError.self, "\(text)") { _ = try ResourceData.parse(hookOutput: Array(text.utf8)) }
        }
    }
}
