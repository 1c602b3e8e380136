import Testing
@testable import Embedding
