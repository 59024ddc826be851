// write_file_atomically on outputs that are not plain files (links, FIFOs,
// folders) and when SIGINT or SIGTERM interrupts a write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "frugal/atomic_file.h"
#include "frugal/error.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](const AtomicFileSink& sink) {
    sink({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  });
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int count_temporaries(const fs::path& dir) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    count += entry.path().filename().string().find(".tmp-") != std::string::npos;
  }
  return count;
}

// The message of the Error `action` throws ("" when it throws none).
template <typename Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("atomic-file"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(AtomicFileTest, RefusesAFifoAndLeavesItAFifo) {
  const auto fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  bool produced = false;
  const std::string message = error_of([&] {
    write_file_atomically(fifo, [&](const AtomicFileSink&) { produced = true; });
  });
  EXPECT_NE(message.find("is not a regular file (a FIFO); give a file path"), std::string::npos) << message;
  EXPECT_FALSE(produced);  // refused before any work
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_NE(error_of([&] { check_output_file(fifo); }).find("a FIFO"), std::string::npos);
  EXPECT_EQ(count_temporaries(dir_), 0);
}

TEST_F(AtomicFileTest, RefusesADirectory) {
  fs::create_directory(dir_ / "folder");
  const std::string message = error_of([&] { write_text(dir_ / "folder", "x"); });
  EXPECT_NE(message.find("is not a regular file (a directory); give a file path"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_directory(dir_ / "folder"));
  EXPECT_EQ(count_temporaries(dir_), 0);
}

TEST_F(AtomicFileTest, WritesThroughASymlinkAndKeepsTheLink) {
  fs::create_directory(dir_ / "real");
  write_text(dir_ / "real" / "model.gguf", "old");
  fs::create_symlink("real/model.gguf", dir_ / "link.gguf");  // relative, as `ln -s` makes them
  write_text(dir_ / "link.gguf", "new");
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.gguf"));
  EXPECT_EQ(read_text(dir_ / "real" / "model.gguf"), "new");
  EXPECT_EQ(count_temporaries(dir_), 0);
  EXPECT_EQ(count_temporaries(dir_ / "real"), 0);

  // A dangling link creates its target.
  fs::create_symlink(dir_ / "real" / "later.gguf", dir_ / "dangling.gguf");
  write_text(dir_ / "dangling.gguf", "created");
  EXPECT_TRUE(fs::is_symlink(dir_ / "dangling.gguf"));
  EXPECT_EQ(read_text(dir_ / "real" / "later.gguf"), "created");

  // A link to a FIFO is refused like the FIFO.
  ASSERT_EQ(::mkfifo((dir_ / "pipe").c_str(), 0600), 0);
  fs::create_symlink(dir_ / "pipe", dir_ / "to-pipe");
  const std::string message = error_of([&] { write_text(dir_ / "to-pipe", "x"); });
  EXPECT_NE(message.find("(a link to"), std::string::npos) << message;
  EXPECT_NE(message.find("a FIFO"), std::string::npos) << message;
}

TEST_F(AtomicFileTest, CheckOutputFileNamesAMissingFolder) {
  EXPECT_EQ(error_of([&] { check_output_file(dir_ / "new.gguf"); }), "");
  const std::string message = error_of([&] { check_output_file(dir_ / "missing" / "x.gguf"); });
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
}

// Runs write_file_atomically in a child that sends itself `signal_number`
// halfway through the content; returns the child's wait status.
int write_interrupted_by(const fs::path& target, int signal_number) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(signal_number, SIG_DFL);  // as a shell starts a command
    try {
      write_file_atomically(target, [&](const AtomicFileSink& sink) {
        const std::string half = "half of the new content";
        sink({reinterpret_cast<const uint8_t*>(half.data()), half.size()});
        ::raise(signal_number);
      });
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(4);  // the signal did not end the process
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST_F(AtomicFileTest, SigintAndSigtermRemoveTheTemporaryAndKeepTheTarget) {
  const auto target = dir_ / "kb.fkv";
  write_text(target, "old content");
  for (int signal_number : {SIGINT, SIGTERM}) {
    const int status = write_interrupted_by(target, signal_number);
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_EQ(WTERMSIG(status), signal_number);
    EXPECT_EQ(read_text(target), "old content");
    EXPECT_EQ(count_temporaries(dir_), 0) << strsignal(signal_number);
  }
}

TEST_F(AtomicFileTest, HandlersAreOnlyThereDuringAWriteAndNeverReplaceTheProgramsOwn) {
  struct sigaction during {};
  write_file_atomically(dir_ / "a", [&](const AtomicFileSink&) { ::sigaction(SIGINT, nullptr, &during); });
  EXPECT_NE(during.sa_handler, SIG_DFL);
  struct sigaction after {};
  ::sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, SIG_DFL);

  // A program's own handler (the server's) stays in place throughout.
  static void (*const own)(int) = [](int) {};
  struct sigaction mine {}, previous {};
  mine.sa_handler = own;
  sigemptyset(&mine.sa_mask);
  ::sigaction(SIGTERM, &mine, &previous);
  write_file_atomically(dir_ / "b", [&](const AtomicFileSink&) { ::sigaction(SIGTERM, nullptr, &during); });
  EXPECT_EQ(during.sa_handler, own);
  ::sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, own);
  ::sigaction(SIGTERM, &previous, nullptr);
}

}  // namespace
}  // namespace frugal
