import Foundation
import Logging
import Server
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The command line finds a running agent through its API; a busy agent that answers slowly is
/// still the agent (taking it for absent sent `tidemark backfill` to the index file behind the
/// agent's back, where the job waited forever for an agent to run it).
@Suite struct AgentClientTests {
    @Test func aBusyAgentThatAnswersSlowlyIsStillFound() async throws {
        let server = try SlowHTTPServer(delay: .milliseconds(2_500), body: #"{"status":"ok","slot":"tm_slot","entities":["product"]}"#)
        defer { server.close() }
        let client = AgentClient(configuration: .init(baseURL: "http://127.0.0.1:\(server.port)"), logger: Logger(label: "test"))
        #expect(await client.isUp(slot: "tm_slot", entities: ["product"]))
        // Another agent (another slot) at the address does not count.
        #expect(await !client.isUp(slot: "other", entities: ["product"]))
    }

    @Test func nothingListeningIsKnownAtOnce() async throws {
        let port = try SlowHTTPServer.unusedPort()
        let client = AgentClient(configuration: .init(baseURL: "http://127.0.0.1:\(port)"), logger: Logger(label: "test"))
        let started = ContinuousClock.now
        #expect(await !client.isUp(slot: "tm_slot", entities: ["product"]))
        #expect(ContinuousClock.now - started < .seconds(5), "a refused connection is not waited out")
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with `body` after `delay`, on a thread of
/// its own (plain sockets: the test needs nothing more).
final class SlowHTTPServer: @unchecked Sendable {
    let port: Int
    private let socket: Int32

    init(delay: Duration, body: String) throws {
        let (fd, port) = try Self.bindLoopback()
        guard Glibc.listen(fd, 16) == 0 else { Glibc.close(fd); throw POSIXError(.EADDRINUSE) }
        socket = fd
        self.port = port
        let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        let thread = Thread {
            while true {
                let client = Glibc.accept(fd, nil, nil)
                guard client >= 0 else { return }  // closed
                var buffer = [UInt8](repeating: 0, count: 4096)
                guard Glibc.read(client, &buffer, buffer.count) > 0 else {
                    Glibc.close(client)  // a bare connect (the client's TCP probe): nothing to answer
                    continue
                }
                Thread.sleep(forTimeInterval: seconds)
                _ = response.withCString { Glibc.write(client, $0, strlen($0)) }
                Glibc.close(client)
            }
        }
        thread.start()
    }

    func close() {
        Glibc.shutdown(socket, Int32(SHUT_RDWR))
        Glibc.close(socket)
    }

    /// A port nothing listens on (bound, then released). No server thread: one left waiting in
    /// `accept` on a closed descriptor could take connections of whatever socket reuses its number
    /// (another test's server), which made `aBusyAgentThatAnswersSlowlyIsStillFound` flaky.
    static func unusedPort() throws -> Int {
        let (fd, port) = try bindLoopback()
        Glibc.close(fd)
        return port
    }

    /// A TCP socket bound to a free port on 127.0.0.1, and the port.
    private static func bindLoopback() throws -> (fd: Int32, port: Int) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) } }
        guard bound == 0 else { Glibc.close(fd); throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
