// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Tidemark",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tidemark", targets: ["tidemark"]),
        .library(name: "Capture", targets: ["Capture"]),
        .library(name: "Postgres", targets: ["Postgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Capture",
            dependencies: [
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Embedding",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .target(
            name: "Indexing",
            dependencies: [
                "CSQLite",
                "Capture",
                "Embedding",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        .target(
            name: "Sync",
            dependencies: [
                "Capture",
                "Embedding",
                "Indexing",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Server",
            dependencies: [
                "Sync",
                "Indexing",
                "Embedding",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "tidemark",
            dependencies: [
                "Server",
                "Embedding",
                "Capture",
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: ["Postgres", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/BenchmarkSupport"
        ),
        .executableTarget(
            name: "CaptureBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Capture",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/CaptureBenchmark"
        ),
        .executableTarget(
            name: "PipelineBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Capture",
                "Embedding",
                "Indexing",
                "Sync",
                "Server",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Benchmarks/PipelineBenchmark"
        ),
        .executableTarget(
            name: "BackfillBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Capture",
                "Embedding",
                "Indexing",
                "Sync",
                "Postgres",
                "TestEmbeddingServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/BackfillBenchmark"
        ),
        .executableTarget(
            name: "EmbeddingBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Embedding",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/EmbeddingBenchmark"
        ),
        .executableTarget(
            name: "ProviderBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Embedding",
                "TestEmbeddingServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ProviderBenchmark"
        ),
        .executableTarget(
            name: "ValidationBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Capture",
                "Embedding",
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Benchmarks/ValidationBenchmark"
        ),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture"]),
        .target(
            name: "TestEmbeddingServer",
            dependencies: [
                "Embedding",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Support/TestEmbeddingServer"
        ),
        .testTarget(
            name: "EmbeddingTests",
            dependencies: ["Embedding", "TestEmbeddingServer", .product(name: "Logging", package: "swift-log")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "IndexingTests", dependencies: ["Indexing", "Embedding", "Capture"]),
        .testTarget(name: "SyncTests", dependencies: ["Sync", "Indexing", "Embedding", "Capture"]),
        .testTarget(
            name: "LiveTests",
            dependencies: [
                "Capture",
                "Embedding",
                "Indexing",
                "Sync",
                "Server",
                "Postgres",
                "TestEmbeddingServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // Validation tests edit the index file behind the agent's back.
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
