// Knowledge caches over HTTP (/v1/knowledge...): creating from files and
// pasted text (with progress events), listing, reading, replacing, adding and
// removing documents, deleting, the refusals, and an edit racing a question:
// the question in flight finishes on the old version, the next reads the new.
#include <gtest/gtest.h>

#include <filesystem>
#include <atomic>
#include <fstream>
#include <future>
#include <sstream>

#include "server/server_fixture.h"

namespace frugal {
namespace {

using nlohmann::json;

class KnowledgeRoutes : public test::ServerTest {
 protected:
  void SetUp() override {
    folder_ = dir_ / ("kb-routes-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(folder_);
  }
  void start_with_folder(ServerOptions options = {}) {
    options.knowledge_dir = folder_;
    options.api_key = "secret";
    start(options);
  }
  httplib::Headers key() const { return {{"Authorization", "Bearer secret"}}; }
  httplib::Result send(const std::string& method, const std::string& path, const json& body = nullptr) {
    const std::string text = body.is_null() ? "" : body.dump();
    if (method == "POST") return client_->Post(path, key(), text, "application/json");
    if (method == "PUT") return client_->Put(path, key(), text, "application/json");
    if (method == "DELETE") return client_->Delete(path, key());
    return client_->Get(path, key());
  }
  static json town_files() {
    json files = json::array();
    for (const auto& entry : std::filesystem::directory_iterator(test::source_path("examples/town"))) {
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      files.push_back({{"name", entry.path().filename().string()}, {"content", text.str()}});
    }
    return files;
  }
  std::string ask(const std::string& model, int max_tokens = 24) {
    json body = {{"model", model}, {"messages", {{{"role", "user"}, {"content", "Who directs the Harlow Clinic?"}}}},
                 {"max_tokens", max_tokens}, {"temperature", 0}};
    auto r = client_->Post("/v1/chat/completions", key(), body.dump(), "application/json");
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body)["choices"][0]["message"]["content"];
  }
  std::filesystem::path folder_;
};

TEST_F(KnowledgeRoutes, CreateListReadEditAndDelete) {
  start_with_folder();
  // Create from the example files and one pasted document, with progress events.
  json body = {{"name", "village"}, {"files", town_files()},
               {"documents", {{{"title", "Harbour Notes"}, {"text", "The harbour opens at 6 am."}}}}};
  auto created = client_->Post("/v1/knowledge?stream=true", key(), body.dump(), "application/json");
  ASSERT_EQ(created->status, 200) << created->body;
  EXPECT_NE(created->body.find("\"type\":\"progress\""), std::string::npos);
  ASSERT_NE(created->body.find("\"type\":\"done\""), std::string::npos) << created->body;
  auto listed = json::parse(send("GET", "/v1/knowledge")->body);
  ASSERT_EQ(listed["data"].size(), 2u);  // the folder's and the one given with --kb
  const json& village = listed["data"][1];
  EXPECT_EQ(village["name"], "village");
  EXPECT_TRUE(village["editable"].get<bool>());
  EXPECT_FALSE(listed["data"][0]["editable"].get<bool>());  // --kb caches are read only
  EXPECT_EQ(village["documents"].size(), 6u);
  EXPECT_EQ(village["model"], "mini@village");
  EXPECT_EQ(send("POST", "/v1/knowledge?stream=true", body)->status, 409);  // refused before any event
  body["name"] = "city";
  ASSERT_EQ(send("POST", "/v1/knowledge", body)->status, 201);
  const std::string before = ask("mini@city");
  // One document, whole.
  auto doc = json::parse(send("GET", "/v1/knowledge/city/documents/harbour-notes")->body);
  EXPECT_EQ(doc["title"], "Harbour Notes");
  EXPECT_EQ(doc["text"], "The harbour opens at 6 am.");
  // Replace, add, remove: each edit equals a cache built from scratch from the same documents.
  ASSERT_EQ(send("PUT", "/v1/knowledge/city/documents/harlow-clinic",
                 {{"title", "Harlow Clinic"}, {"text", "Dr. Lena Park directs the Harlow Clinic."}})->status, 200);
  ASSERT_EQ(send("PUT", "/v1/knowledge/city/documents/zoo", {{"text", "The zoo has two lions."}})->status, 200);
  auto edited = json::parse(send("GET", "/v1/knowledge/city")->body);
  EXPECT_EQ(edited["documents"].size(), 7u);
  EXPECT_EQ(edited["documents"].back()["id"], "zoo");
  json rebuilt_files = json::array();
  for (const auto& d : edited["documents"]) {
    const auto full = json::parse(send("GET", "/v1/knowledge/city/documents/" + d["id"].get<std::string>())->body);
    rebuilt_files.push_back({{"name", d["id"].get<std::string>() + ".md"},
                             {"content", "# " + full["title"].get<std::string>() + "\n" + full["text"].get<std::string>()}});
  }
  ASSERT_EQ(send("POST", "/v1/knowledge", {{"name", "rebuilt"}, {"files", rebuilt_files}})->status, 201);
  const std::string after = ask("mini@city");
  EXPECT_EQ(after, ask("mini@rebuilt"));
  EXPECT_NE(after, before);
  ASSERT_EQ(send("DELETE", "/v1/knowledge/city/documents/zoo")->status, 200);
  EXPECT_EQ(json::parse(send("GET", "/v1/knowledge/city")->body)["documents"].size(), 6u);
  // Delete the cache: gone from the list, the models and the folder.
  ASSERT_EQ(send("DELETE", "/v1/knowledge/city")->status, 200);
  EXPECT_EQ(send("GET", "/v1/knowledge/city")->status, 404);
  EXPECT_EQ(client_->Get("/v1/models", key())->body.find("mini@city"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(folder_ / "city.fkv"));
}

TEST_F(KnowledgeRoutes, RefusalsAreClear) {
  start_with_folder();
  auto expect = [](const httplib::Result& r, int status, const std::string& fragment) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_NE(r->body.find(fragment), std::string::npos) << r->body;
  };
  const json one = {{"name", "ok"}, {"documents", {{{"title", "A"}, {"text", "Some text."}}}}};
  expect(client_->Get("/v1/knowledge"), 401, "API key");
  expect(send("POST", "/v1/knowledge", {{"name", "../evil"}, {"documents", one["documents"]}}), 400, "not a knowledge cache name");
  expect(send("POST", "/v1/knowledge", {{"name", "x"}, {"files", {{{"name", "a.pdf"}, {"content", "x"}}}}}), 400,
         "only .txt, .md and .jsonl");
  expect(send("POST", "/v1/knowledge", {{"name", "x"}, {"files", {{{"name", "a.jsonl"}, {"content", "{oops"}}}}}), 400,
         "not valid JSON");
  expect(send("POST", "/v1/knowledge", {{"name", "x"}}), 400, "at least one document");
  const std::string latin1 = R"({"name": "x", "files": [{"name": "a.txt", "content": "caf)" "\xe9" R"("}]})";
  expect(client_->Post("/v1/knowledge", key(), latin1, "application/json"), 400, "");
  ASSERT_EQ(send("POST", "/v1/knowledge", one)->status, 201);
  expect(send("POST", "/v1/knowledge", one), 409, "exists already");
  expect(send("DELETE", "/v1/knowledge/ok/documents/a"), 400, "only document");
  expect(send("DELETE", "/v1/knowledge/ok/documents/nope"), 404, "no document 'nope'");
  expect(send("PUT", "/v1/knowledge/missing/documents/a", {{"text", "x"}}), 404, "no knowledge cache");
  expect(send("DELETE", "/v1/knowledge/town"), 404, "no knowledge cache");  // --kb caches are not the folder's
  // Read-only and folder-less servers refuse every change.
  server_->stop();
  thread_.join();
  ServerOptions read_only;
  read_only.read_only_knowledge = true;
  start_with_folder(read_only);
  expect(send("POST", "/v1/knowledge", {{"name", "y"}, {"documents", one["documents"]}}), 403, "read-only-knowledge");
  expect(send("DELETE", "/v1/knowledge/ok"), 403, "read-only-knowledge");
  EXPECT_EQ(send("GET", "/v1/knowledge/ok")->status, 200);
  server_->stop();
  thread_.join();
  ServerOptions no_folder;
  no_folder.api_key = "secret";
  start(no_folder);
  expect(send("POST", "/v1/knowledge", one), 403, "--kb-dir");
}

TEST_F(KnowledgeRoutes, AnEditDuringAnAnswerLeavesThatAnswerOnTheOldVersion) {
  start_with_folder();
  ASSERT_EQ(send("POST", "/v1/knowledge", {{"name", "city"}, {"files", town_files()}})->status, 201);
  const json body = {{"model", "mini@city"},
                     {"messages", {{{"role", "user"}, {"content", "Who directs the Harlow Clinic?"}}}},
                     {"max_tokens", 600}, {"temperature", 0}, {"stream", true}};
  // Whether an answer is still running when the edit lands depends on timing;
  // try until it is (each try flips the clinic's director), and check every
  // answer that raced.
  int raced = 0;
  for (int attempt = 0; attempt < 10 && raced < 2; ++attempt) {
    const std::string old_answer = ask("mini@city", 600);
    std::promise<void> began;
    auto began_future = began.get_future();
    bool told = false;
    std::atomic<bool> edited{false};
    std::atomic<size_t> pieces_after_edit{0};
    std::string streamed;
    auto in_flight = std::async(std::launch::async, [&] {
      return post_streaming(body, [&](const char* data, size_t size) {
        streamed.append(data, size);
        if (edited) ++pieces_after_edit;
        if (!told) {
          told = true;
          began.set_value();
        }
      }, key());
    });
    ASSERT_EQ(began_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    const std::string director = attempt % 2 ? "Dr. Mira Osei" : "Dr. Lena Park";
    ASSERT_EQ(send("PUT", "/v1/knowledge/city/documents/harlow-clinic",
                   {{"title", "Harlow Clinic"}, {"text", director + " directs the Harlow Clinic."}})->status, 200);
    edited = true;
    ASSERT_TRUE(in_flight.get());
    if (pieces_after_edit == 0) continue;  // over before the edit: nothing raced
    ++raced;
    EXPECT_EQ(test::ServerTest::stream_text(streamed, true), old_answer) << "attempt " << attempt;
    EXPECT_NE(ask("mini@city", 600), old_answer);  // the next question reads the new version
  }
  EXPECT_GT(raced, 0) << "no answer was still running when an edit landed";
}

TEST_F(KnowledgeRoutes, AFileReplacedOrDeletedBehindTheServersBackIsFollowed) {
  // As another server sharing the folder would do it.
  start_with_folder();
  ASSERT_EQ(send("POST", "/v1/knowledge", {{"name", "city"}, {"files", town_files()}})->status, 201);
  const std::string before = ask("mini@city");
  KnowledgeBuildOptions build;
  build.context = 1024;
  std::vector<Document> docs = {{"clinic", "Harlow Clinic", "Dr. Lena Park directs the Harlow Clinic."}};
  KnowledgeCache::build(*model_, *tokenizer_, docs, build).save(folder_ / "city.fkv");
  const std::string after = ask("mini@city");
  EXPECT_NE(after, before);
  ASSERT_EQ(send("POST", "/v1/knowledge", {{"name", "same"}, {"documents", {{{"id", "clinic"}, {"title", "Harlow Clinic"},
                 {"text", "Dr. Lena Park directs the Harlow Clinic."}}}}})->status, 201);
  EXPECT_EQ(after, ask("mini@same"));
  std::filesystem::remove(folder_ / "city.fkv");
  json body = {{"model", "mini@city"}, {"messages", {{{"role", "user"}, {"content", "Who?"}}}}};
  EXPECT_EQ(send("POST", "/v1/chat/completions", body)->status, 404);
  auto listed = send("GET", "/v1/knowledge");
  ASSERT_EQ(listed->status, 200);
  EXPECT_EQ(listed->body.find("\"city\""), std::string::npos);
}

TEST_F(KnowledgeRoutes, ThePageAndAnOaeReportAreServed) {
  const auto report = dir_ / "oae-report";
  std::filesystem::create_directories(report);
  std::ofstream(report / "report.html") << "<html><body>OAE report</body></html>";
  ServerOptions options;
  options.oae_report_dir = report;
  start_with_folder(options);
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);  // the page's files need no key: they hold no data
  EXPECT_NE(page->body.find("<title>frugal</title>"), std::string::npos);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  for (const char* asset : {"/app.js", "/style.css", "/vendor/marked.umd.js", "/vendor/purify.min.js"}) {
    auto r = client_->Get(asset);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << asset;
    EXPECT_GT(r->body.size(), 1000u) << asset;
  }
  auto shown = client_->Get("/reports/report.html");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->status, 200);
  EXPECT_NE(shown->body.find("OAE report"), std::string::npos);
  EXPECT_EQ(client_->Get("/reports")->status, 302);
}

}  // namespace
}  // namespace frugal
