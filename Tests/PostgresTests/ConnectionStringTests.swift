import Testing

@testable import Postgres

/// Every way a secret can sit in a connection string, and that none of them is ever printed.
@Suite struct ConnectionStringTests {
    /// Fails with the redacted text when any of `secrets` survives redaction.
    func expectRedacted(_ text: String, hiding secrets: [String], keeping kept: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        let redacted = ConnectionString.redacted(text)
        for secret in secrets {
            #expect(!redacted.contains(secret), "\(secret) is visible in \(redacted)", sourceLocation: sourceLocation)
        }
        for part in kept {
            #expect(redacted.contains(part), "\(part) should stay visible in \(redacted)", sourceLocation: sourceLocation)
        }
    }

    @Test func conninfoPasswordWithSpacesAroundTheEqualsSign() {
        expectRedacted("host=db password = s3cret user=app", hiding: ["s3cret"], keeping: ["host=db", "user=app"])
        expectRedacted("host=db password= s3cret user=app", hiding: ["s3cret"], keeping: ["user=app"])
        expectRedacted("host=db password =s3cret user=app", hiding: ["s3cret"], keeping: ["user=app"])
        expectRedacted("host=db password = 's3 cret' user=app", hiding: ["s3", "cret"], keeping: ["user=app"])
        expectRedacted("host=db password\t=\t'it\\'s s3cret' user=app", hiding: ["it", "s3cret"], keeping: ["user=app"])
        expectRedacted("host=db PASSWORD=s3cret", hiding: ["s3cret"], keeping: ["host=db"])
    }

    @Test func urlEncodedPasswords() {
        expectRedacted("postgres://u:p%40ss%2Fw@host/db", hiding: ["p%40ss%2Fw", "p%40ss", "ss%2Fw"], keeping: ["postgres://u:", "@host/db"])
        #expect(ConnectionString.redacted("postgres://u:p%40ss%2Fw@host/db") == "postgres://u:***@host/db")
        expectRedacted("postgresql://u:%73%33cret@host:5432/db?sslmode=require", hiding: ["%73%33cret"], keeping: ["host:5432/db", "sslmode=require"])
    }

    @Test func unencodedSlashOrAtInsideThePassword() {
        #expect(ConnectionString.redacted("postgres://u:p@ss@host/db") == "postgres://u:***@host/db")
        #expect(ConnectionString.redacted("postgres://u:pa/ss@host/db") == "postgres://u:***@host/db")
        expectRedacted("postgres://u:pa/ss@word@host:5432/db?sslmode=require", hiding: ["pa/ss", "ss@word", "word"], keeping: ["@host:5432/db"])
        expectRedacted("postgres://u:pa?ss@host/db", hiding: ["pa?ss", "?ss"], keeping: ["@host/db"])
        expectRedacted("postgres://u:pa#ss@host/db", hiding: ["pa#ss", "#ss"], keeping: ["@host/db"])
    }

    @Test func queryParametersNamedLikeSecrets() {
        expectRedacted("postgres://db/shop?user=a&password=s3cret&sslmode=require", hiding: ["s3cret"], keeping: ["user=a", "sslmode=require"])
        expectRedacted("postgres://db/shop?password=s3cret", hiding: ["s3cret"], keeping: ["postgres://db/shop?password="])
        expectRedacted("postgres://db/shop?sslmode=require&sslpassword=s3cret", hiding: ["s3cret"], keeping: ["sslmode=require"])
        expectRedacted("postgres://db/shop?PassWord=s3cret", hiding: ["s3cret"])
        expectRedacted("postgres://db/shop?api_token=t0ken&x=1", hiding: ["t0ken"], keeping: ["x=1"])
        expectRedacted("postgres://db/shop?client_SECRET=abc123", hiding: ["abc123"])
        expectRedacted("postgres://db/shop?sslkey=%2Fetc%2Fkey.pem&application_name=x", hiding: ["key.pem"], keeping: ["application_name=x"])
        expectRedacted("postgres://db/shop?pass%77ord=s3cret", hiding: ["s3cret"])
        expectRedacted("host=db sslpassword=s3cret api_token = 'a b' user=app", hiding: ["s3cret", "a b"], keeping: ["user=app"])
    }

    @Test func harmlessStringsAreLeftAlone() {
        #expect(ConnectionString.redacted("postgres://app@db/shop") == "postgres://app@db/shop")
        #expect(ConnectionString.redacted("postgres://db:5432/shop?sslmode=require") == "postgres://db:5432/shop?sslmode=require")
        #expect(ConnectionString.redacted("host=db port=5432 dbname=shop keepalives=1") == "host=db port=5432 dbname=shop keepalives=1")
    }

    @Test func urlsInsideLongerTextAreRedactedToo() {
        // e.g. a YAML parser's error quoting the line that holds the URL.
        expectRedacted("line 1: source: { url: \"postgres://app:s3cret@db/shop\" } <- here", hiding: ["s3cret"], keeping: ["<- here"])
        expectRedacted("a postgres://a:one@h/x and postgresql://b:two@h/y", hiding: ["one", "two"])
    }

    @Test func libpqMessagesLoseEveryPieceOfTheSecret() {
        // libpq reads `u:top@secret@h` as password "top" and host "secret@h", and `u:top/secret@h` as
        // host "u" and port "top"; its errors quote what it parsed.
        let at = ConnectionString.scrub(
            "could not translate host name \"secret@127.0.0.1\" to address: Name or service not known",
            secretsOf: "postgres://u:top@secret@127.0.0.1:1/db")
        #expect(!at.contains("secret@") && at.contains("could not translate host name"), "\(at)")
        let slash = ConnectionString.scrub(
            "invalid integer value \"top\" for connection option \"port\"", secretsOf: "postgres://u:top/secret@127.0.0.1:1/db")
        #expect(!slash.contains("\"top\"") && slash.contains("connection option \"port\""), "\(slash)")
        let plain = ConnectionString.scrub("connection to server at \"127.0.0.1\", port 1 failed: Connection refused", secretsOf: "postgres://u:p@127.0.0.1:1/db")
        #expect(plain == "connection to server at \"127.0.0.1\", port 1 failed: Connection refused")
    }
}
