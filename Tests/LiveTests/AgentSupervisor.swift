import Foundation
import Testing

/// The `tidemark run` processes of a test, one at a time on the same configuration and index, each
/// writing its own log file (`agent-N.log`). Tells a stop the test asked for from an agent that
/// ended by itself.
final class AgentSupervisor {
    let binary: String
    let configPath: String
    let directory: String
    private var current: AgentProcess?
    /// Whether the current process was stopped by the test (or none was started).
    private var stopped = true
    /// Processes started so far.
    private(set) var starts = 0

    init(binary: String, configPath: String, directory: String) {
        self.binary = binary
        self.configPath = configPath
        self.directory = directory
    }

    /// The log file of the current (or last) process.
    var logPath: String { "\(directory)/agent-\(starts).log" }

    /// Whether an agent is meant to be running.
    var isMeantToRun: Bool { !stopped }

    func start() throws {
        starts += 1
        current = try AgentProcess(binary: binary, config: configPath, log: logPath, level: "info")
        stopped = false
    }

    /// When the agent ended although the test did not stop it: how it ended. Reported once.
    func unexpectedExit() -> String? {
        guard !stopped, let current, !current.process.isRunning else { return nil }
        stopped = true
        return "agent run \(starts) ended by itself (\(Self.ending(current.process)))"
    }

    /// SIGKILL. Returns a problem when the agent had already ended or did not die.
    func kill() async -> String? {
        guard let current, !stopped else { return nil }
        stopped = true
        guard current.process.isRunning else { return "agent run \(starts) had ended by itself before SIGKILL (\(Self.ending(current.process)))" }
        current.kill(SIGKILL)
        guard await current.process.exited(within: .seconds(10)) else { return "agent run \(starts) survived SIGKILL for 10 s" }
        return nil
    }

    /// SIGTERM, which must drain, checkpoint and exit 0 within `timeout` (else SIGKILL). Returns a
    /// problem when it did not.
    func terminate(timeout: Duration = .seconds(30)) async -> String? {
        guard let current, !stopped else { return nil }
        stopped = true
        guard current.process.isRunning else { return "agent run \(starts) had ended by itself before SIGTERM (\(Self.ending(current.process)))" }
        // A signal that arrives while the process is still loading (before `run` takes over SIGTERM)
        // ends it the default way: wait until it has said it is starting, as an operator would.
        let deadline = ContinuousClock.now + .seconds(30)
        while current.process.isRunning, ContinuousClock.now < deadline,
            !((try? String(contentsOfFile: logPath, encoding: .utf8))?.contains("starting") ?? false)
        {
            try? await Task.sleep(for: .milliseconds(20))
        }
        current.kill(SIGTERM)
        guard await current.process.exited(within: timeout) else {
            current.kill(SIGKILL)
            _ = await current.process.exited(within: .seconds(10))
            return "agent run \(starts) did not exit within \(timeout) of SIGTERM (killed)"
        }
        if current.process.terminationReason == .exit && current.process.terminationStatus == 0 { return nil }
        return "agent run \(starts) did not exit 0 after SIGTERM (\(Self.ending(current.process)))"
    }

    /// The last lines of the current process's log.
    func logTail(lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log at \(logPath))"
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Runs a `tidemark` command (not the agent) to its end.
    func command(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
        try await TidemarkBinary.run(binary, arguments + ["--config", configPath])
    }

    private static func ending(_ process: Process) -> String {
        process.terminationReason == .exit ? "exit status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
    }
}

extension Process {
    /// Whether the process has ended within `timeout`. Polls instead of `waitUntilExit`, which would
    /// block a thread of the cooperative pool.
    func exited(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
