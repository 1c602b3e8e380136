import Testing

@testable import Sync

/// Configuration errors never print the source URL's secret, even when they quote the file.
@Suite struct SecretConfigurationTests {
    func message(_ text: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try ConfigurationLoader(environment: environment).parse(text)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func brokenYAMLAroundTheURLDoesNotShowThePassword() {
        for text in [
            "source: { url: \"postgres://app:Sup3rSecret@localhost/shop\" \nentities: {}",
            "source:\n  url: postgres://app:Sup3rSecret@localhost/shop\n   slot: [x\n",
            "source: { url: \"host=db password = Sup3rSecret\", slot: [ }",
        ] {
            let error = message(text)
            #expect(error.contains("not valid YAML"), "\(error)")
            #expect(!error.contains("Sup3rSecret"), "\(error)")
        }
    }

    @Test func redactedURLHidesEveryForm() {
        for url in [
            "postgres://app:Sup3r@Secret@db/shop", "postgres://app:Sup3r/Secret@db/shop",
            "postgres://app@db/shop?sslpassword=Sup3rSecret", "host=db password = 'Sup3r Secret'",
        ] {
            let redacted = AgentConfiguration.Source(url: url).redactedURL
            #expect(!redacted.contains("Sup3r") && !redacted.contains("Secret"), "\(redacted)")
        }
    }
}
