import ArgumentParser
import Foundation
import Logging

/// Options shared by commands that talk to the source database.
struct SourceOptions: ParsableArguments {
    @Option(name: .long, help: "Source database URL or conninfo (default: $TIDEMARK_SOURCE_URL).")
    var source: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    func sourceURL() throws -> String {
        if let source, !source.isEmpty { return source }
        if let url = ProcessInfo.processInfo.environment["TIDEMARK_SOURCE_URL"], !url.isEmpty { return url }
        throw ValidationError("no source database: pass --source postgres://user@host/db or set TIDEMARK_SOURCE_URL")
    }

    func makeLogger() throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical")
        }
        return bootstrapLogging(level)
    }
}

/// Sends log lines at `level` and above to standard error; returns the command's logger.
func bootstrapLogging(_ level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    var logger = Logger(label: "tidemark")
    logger.logLevel = level
    return logger
}

/// Prints `message` to standard error and exits with status 1: the path for errors a person must act on.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    exit(1)
}
