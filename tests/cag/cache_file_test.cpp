// Damaged and mismatched knowledge cache files are refused with a message
// that names what is wrong; a writer killed mid-file never leaves a partial
// file under the final name.
#include <gtest/gtest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "cag_test_support.h"
#include "frugal/error.h"
#include "support/model_builder.h"

extern char** environ;

namespace frugal::test {
namespace {

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

class CacheFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loaded_ = load_test_model();
    dir_ = scratch_dir("cag-file");
    KnowledgeBuildOptions options;
    options.context = 512;
    KnowledgeCache::build(*loaded_.model, *loaded_.tokenizer, small_corpus(), options).save(dir_ / "kb.fkv");
    bytes_ = read_bytes(dir_ / "kb.fkv");
  }

  // The message of the error that loading `bytes` with `model` raises.
  std::string load_error(const std::vector<uint8_t>& bytes, Model* model = nullptr, const Tokenizer* tokenizer = nullptr,
                         bool verify = true) {
    write_bytes(dir_ / "bad.fkv", bytes);
    KnowledgeLoadOptions options;
    options.verify_checksum = verify;
    try {
      KnowledgeCache::load(dir_ / "bad.fkv", model ? *model : *loaded_.model,
                           tokenizer ? *tokenizer : *loaded_.tokenizer, options);
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(no error)";
  }

  LoadedTestModel loaded_;
  std::filesystem::path dir_;
  std::vector<uint8_t> bytes_;
};

TEST_F(CacheFileTest, LayoutIsPageAlignedAndEndsWithTheChecksum) {
  uint64_t kv_offset = 0, checksum_offset = 0;
  std::memcpy(&kv_offset, &bytes_[80], 8);
  std::memcpy(&checksum_offset, &bytes_[96], 8);
  EXPECT_EQ(std::string(bytes_.begin(), bytes_.begin() + 8), "FRUGALKV");
  EXPECT_EQ(kv_offset % 4096, 0u);
  EXPECT_EQ(checksum_offset + 8, bytes_.size());
  const auto summary = inspect_knowledge_cache(dir_ / "kb.fkv");
  EXPECT_EQ(summary.version, 1u);  // F32: what version 1 can say is written as version 1
  EXPECT_EQ(summary.documents.size(), 4u);
  EXPECT_EQ(summary.layer_count, loaded_.model->config().layer_count);
}

TEST_F(CacheFileTest, CorruptKeysAreCaughtByTheChecksum) {
  auto bad = bytes_;
  uint64_t kv_offset = 0;
  std::memcpy(&kv_offset, &bad[80], 8);
  bad[kv_offset + 100] ^= 0x40;
  const std::string message = load_error(bad);
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
  // Skipping the check is the caller's choice: the file then loads.
  EXPECT_EQ(load_error(bad, nullptr, nullptr, false), "(no error)");
}

TEST_F(CacheFileTest, TruncatedFileSaysHowShort) {
  auto bad = bytes_;
  bad.resize(bad.size() - 5000);
  const std::string message = load_error(bad);
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(bytes_.size())), std::string::npos) << message;
  EXPECT_NE(load_error(std::vector<uint8_t>(bytes_.begin(), bytes_.begin() + 40)).find("too short"),
            std::string::npos);
}

TEST_F(CacheFileTest, NewerVersionAndForeignFilesAreRefused) {
  auto newer = bytes_;
  newer[8] = 99;
  const std::string message = load_error(newer);
  EXPECT_NE(message.find("version 99"), std::string::npos) << message;
  EXPECT_NE(message.find("newer frugal"), std::string::npos) << message;

  auto foreign = bytes_;
  std::memcpy(foreign.data(), "GGUF\3\0\0\0", 8);
  EXPECT_NE(load_error(foreign).find("not a frugal knowledge cache"), std::string::npos);

  auto offsets = bytes_;
  offsets[80] ^= 0x10;  // KV offset no longer where the layout puts it
  EXPECT_NE(load_error(offsets).find("KV offset"), std::string::npos);
}

// Version 1 (F32 and F16 only) loads; a version-1 header with a type only
// version 2 has is refused as corrupt.
TEST_F(CacheFileTest, VersionOneFilesStillLoad) {
  auto v1 = bytes_;
  ASSERT_EQ(v1[8], 1);
  EXPECT_EQ(load_error(v1, nullptr, nullptr, false), "(no error)");
  v1[32] = 2;  // Q8_0
  const std::string message = load_error(v1, nullptr, nullptr, false);
  EXPECT_NE(message.find("KV type 2"), std::string::npos) << message;
  auto unknown = bytes_;
  unknown[32] = 9;
  EXPECT_NE(load_error(unknown).find("KV type 9"), std::string::npos);
}

TEST_F(CacheFileTest, HeaderCountsThatWouldOverflowTheLayoutAreRefused) {
  // Counts whose layout wraps around 64 bits to exactly this file's size
  // (F16, 2979 layers, 1661 KV heads of 217, 2^32 tokens, 8-byte manifest):
  // refused before anything is allocated for them.
  std::vector<uint8_t> hostile(4104, 0);
  std::memcpy(hostile.data(), "FRUGALKV", 8);
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&hostile[at], &v, 4); };
  auto put64 = [&](size_t at, uint64_t v) { std::memcpy(&hostile[at], &v, 8); };
  put32(8, 1);
  put32(12, 128);
  put32(32, 1);
  put32(36, 2979);
  put32(40, 1661);
  put32(44, 217);
  put64(48, uint64_t{1} << 32);
  put64(56, 128);
  put64(64, 8);
  std::memcpy(&hostile[128], "{}      ", 8);
  put64(72, 136);
  put64(80, uint64_t{136} + (uint64_t{4} << 32) + 4096 - (uint64_t{136} + (uint64_t{4} << 32)) % 4096);
  const std::string message = load_error(hostile, nullptr, nullptr, false);
  EXPECT_NE(message.find("impossible size"), std::string::npos) << message;
}

TEST_F(CacheFileTest, AnotherModelOfOtherDimensionsIsRefused) {
  auto other = load_test_model("models/tiny-llama-spm.gguf");
  const std::string message = load_error(bytes_, other.model.get(), other.tokenizer.get());
  EXPECT_NE(message.find("layers"), std::string::npos) << message;
  EXPECT_NE(message.find("rebuild"), std::string::npos) << message;
}

TEST_F(CacheFileTest, SameShapeDifferentWeightsOrVocabularyIsRefused) {
  // One norm weight changed: same architecture, shapes and types.
  rewrite_gguf(shared_path("models/mini-llama-spm-q8_0.gguf"), dir_ / "retrained.gguf", [](GgufEdit& edit) {
    for (auto& tensor : edit.tensors) {
      if (tensor.name == "output_norm.weight") tensor.data[0] ^= 0x01;
    }
  });
  auto model = Model::load(dir_ / "retrained.gguf", {.threads = 2});
  std::string message = load_error(bytes_, model.get());
  EXPECT_NE(message.find("different model"), std::string::npos) << message;
  EXPECT_NE(message.find("weights or settings differ"), std::string::npos) << message;

  // A quantization of other type: named in the differences.
  rewrite_gguf(shared_path("models/mini-llama-spm-q8_0.gguf"), dir_ / "renamed.gguf", [](GgufEdit& edit) {
    for (auto& [key, value] : edit.metadata) {
      if (key == "llama.context_length") value = GgufValue::u32(2048);
    }
  });
  auto longer = Model::load(dir_ / "renamed.gguf", {.threads = 2});
  message = load_error(bytes_, longer.get());
  EXPECT_NE(message.find("different model"), std::string::npos) << message;

  // Same model, one token's text changed: a different tokenizer.
  rewrite_gguf(shared_path("models/mini-llama-spm-q8_0.gguf"), dir_ / "vocab.gguf", [](GgufEdit& edit) {
    for (auto& [key, value] : edit.metadata) {
      if (key == "tokenizer.ggml.tokens") std::get<GgufArray>(value.value).items[1000] = GgufValue::string("zzzz");
    }
  });
  auto vocab_model = Model::load(dir_ / "vocab.gguf", {.threads = 2});
  auto vocab_tokenizer = Tokenizer::from_gguf(vocab_model->file());
  message = load_error(bytes_, vocab_model.get(), vocab_tokenizer.get());
  EXPECT_NE(message.find("different tokenizer"), std::string::npos) << message;
}

// Starts `frugal kb build` writing slowly, kills it at several points, and
// checks the final name is absent or a complete, loadable file.
TEST_F(CacheFileTest, KilledWriterNeverLeavesAPartialFile) {
  const std::string model = shared_path("models/mini-llama-spm-q8_0.gguf").string();
  write_bytes(dir_ / "doc.txt", std::vector<uint8_t>{'T', 'h', 'e', ' ', 's', 'k', 'y', '.'});
  auto run_and_kill = [&](const std::filesystem::path& out, int kill_after_ms) {
    const std::string binary = frugal_binary().string();
    std::vector<std::string> args = {binary, "kb", "build", "-q", "-t", "1", "-m", model, "--docs",
                                     (dir_ / "doc.txt").string(), "-c", "512", "-o", out.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {"FRUGAL_TEST_WRITE_PAUSE_MS=15"};
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    std::vector<char*> env;
    for (auto& e : env_strings) env.push_back(e.data());
    env.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), env.data()), 0);
    // Wait until the writer has created its temporary file (the build itself
    // takes longer under sanitizers), then let it write for a while.
    const std::string temporary_prefix = out.filename().string() + ".tmp-";
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool writing = false;
    while (!writing && std::chrono::steady_clock::now() < give_up) {
      for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
        writing = writing || entry.path().filename().string().rfind(temporary_prefix, 0) == 0;
      }
      if (!writing) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_TRUE(writing) << "the writer never started";
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  };
  // Writing 8 blocks at 15 ms each takes over 120 ms: every kill lands
  // mid-write.
  for (int kill_after_ms : {0, 30, 60, 90}) {
    const auto out = dir_ / ("killed-" + std::to_string(kill_after_ms) + ".fkv");
    run_and_kill(out, kill_after_ms);
    EXPECT_FALSE(std::filesystem::exists(out)) << kill_after_ms;
  }
  // Over an existing file: it stays the old, complete one.
  run_and_kill(dir_ / "kb.fkv", 50);
  EXPECT_EQ(read_bytes(dir_ / "kb.fkv"), bytes_);
  // The kills landed mid-write: their temporary files are what is left.
  size_t temporaries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    temporaries += entry.path().filename().string().find(".tmp-") != std::string::npos;
  }
  EXPECT_EQ(temporaries, 5u);
}

}  // namespace
}  // namespace frugal::test
