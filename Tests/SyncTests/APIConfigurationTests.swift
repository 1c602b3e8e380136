import Foundation
import Testing

@testable import Sync

@Suite struct APIConfigurationTests {
    let base = """
        source: { url: "postgres://app@localhost:5432/shop" }
        entities:
          product: { table: public.products, content: "{{name}}" }
        """

    func parse(_ extra: String, environment: [String: String] = [:]) throws(SyncError) -> AgentConfiguration {
        try ConfigurationLoader(environment: environment).parse(base + "\n" + extra)
    }

    func message(_ extra: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try parse(extra, environment: environment)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func defaultsListenOnLoopbackWithoutAToken() throws {
        let api = try parse("").api
        #expect(api.enabled)
        #expect(api.host == "127.0.0.1")
        #expect(api.port == 7601)
        #expect(api.token == nil)
        #expect(api.isLoopback)
        #expect(api.readyMaxLagBytes == 1 << 30)
        #expect(api.readyMaxLag == .seconds(300))
    }

    @Test func listenForms() throws {
        #expect(AgentConfiguration.API.parseListen("127.0.0.2:8080")! == ("127.0.0.2", 8080))
        #expect(AgentConfiguration.API.parseListen("[::1]:9000")! == ("::1", 9000))
        #expect(AgentConfiguration.API.parseListen(":9000")! == ("127.0.0.1", 9000))
        #expect(AgentConfiguration.API.parseListen("localhost")! == ("localhost", 7601))
        #expect(AgentConfiguration.API.parseListen("host:99999") == nil)
        #expect(AgentConfiguration.API.parseListen("a b:1") == nil)
        #expect(AgentConfiguration.API.isLoopback("127.0.0.1") && AgentConfiguration.API.isLoopback("::1"))
        #expect(!AgentConfiguration.API.isLoopback("127.0.0.2"), "only 127.0.0.1 counts: other loopback addresses are how services get published")
        #expect(!AgentConfiguration.API.isLoopback("0.0.0.0"))
        #expect(!AgentConfiguration.API.isLoopback("10.0.0.1"))
        #expect(message("api: { listen: \"nonsense:port\" }").contains("api.listen"))
    }

    @Test func anExposedAddressNeedsAToken() throws {
        let refused = message("api: { listen: 0.0.0.0:7601 }")
        #expect(refused.contains("no API token"), "\(refused)")
        #expect(refused.contains("token_env"))
        let token = String(repeating: "t", count: 32)
        let api = try parse("api: { listen: 0.0.0.0:7601, token_env: MY_TOKEN }", environment: ["MY_TOKEN": token]).api
        #expect(api.token == token)
        #expect(!api.isLoopback)
        // Unset variable: named in the message, value never shown.
        #expect(message("api: { listen: 0.0.0.0:7601, token_env: MY_TOKEN }").contains("MY_TOKEN is not set"))
        // A short token is refused without echoing it.
        let short = message("api: { token_env: MY_TOKEN }", environment: ["MY_TOKEN": "abc"])
        #expect(short.contains("at least 16") && !short.contains("abc"))
    }

    @Test func tokenFromAFileOrTheDefaultVariable() throws {
        let path = NSTemporaryDirectory() + "tidemark-token-\(UUID().uuidString)"
        let token = "file-token-0123456789abcdef"
        try (token + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try parse("api: { token_file: \"\(path)\" }").api.token == token)
        #expect(try parse("", environment: ["TIDEMARK_API_TOKEN": token]).api.token == token)
        #expect(message("api: { token_file: /nonexistent/token }").contains("cannot read"))
    }

    @Test func environmentOverridesAndUnknownKeys() throws {
        let api = try parse("", environment: ["TIDEMARK_API_LISTEN": "127.0.0.1:0", "TIDEMARK_API_ENABLED": "false", "TIDEMARK_API_READY_MAX_LAG": "30s"]).api
        #expect(api.port == 0)
        #expect(!api.enabled)
        #expect(api.readyMaxLag == .seconds(30))
        #expect(message("api: { listn: 1 }").contains("did you mean 'listen'"))
        // The API disabled needs no token wherever it would have listened.
        #expect(try !parse("api: { enabled: false, listen: 0.0.0.0:1 }").api.enabled)
    }
}
