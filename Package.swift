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
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
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
            name: "Indexing",
            dependencies: [
                "Capture",
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
                "Indexing",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tidemark",
            dependencies: [
                "Capture",
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
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
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/PipelineBenchmark"
        ),
        .executableTarget(
            name: "BackfillBenchmark",
            dependencies: [
                "BenchmarkSupport",
                "Capture",
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/BackfillBenchmark"
        ),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture"]),
        .testTarget(name: "IndexingTests", dependencies: ["Indexing", "Capture"]),
        .testTarget(name: "SyncTests", dependencies: ["Sync", "Indexing", "Capture"]),
        .testTarget(
            name: "LiveTests",
            dependencies: [
                "Capture",
                "Indexing",
                "Sync",
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
