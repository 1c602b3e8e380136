import Foundation
import Testing

/// Guards against a test run that silently skips every live test.
@Suite struct EnvironmentTests {
    @Test func liveServersArePresentWhenRequired() {
        let required = ProcessInfo.processInfo.environment["TIDEMARK_REQUIRE_LIVE"] == "1"
            || ProcessInfo.processInfo.environment["CI"] == "true"
        if required {
            #expect(LiveServer.all.map(\.name) == ["pg15", "pg18"], "run Scripts/test.sh, which starts both servers and exports their URLs")
        }
    }
}
