/// Settings of ``StaticEmbedder``, one field per configuration key of `embedder` (kind `static`).
extension StaticEmbedder {
    public struct Configuration: Sendable, Equatable {
        /// A safetensors file holding one 2-D token-embedding matrix (F16 or F32).
        /// Default `models/wordllama/l2_supercat_256.safetensors` (fetched by `Scripts/fetch-model.sh`).
        public var weights = "models/wordllama/l2_supercat_256.safetensors"
        /// A Hugging Face `tokenizer.json` (BPE or WordPiece).
        /// Default `models/wordllama/l2_supercat_tokenizer_config.json`.
        public var tokenizer = "models/wordllama/l2_supercat_tokenizer_config.json"
        /// Name of the matrix inside the safetensors file; `nil`: the only 2-D tensor.
        public var tensor: String?

        public init() {}
    }
}
