// frugal's web page in a real browser (Debian's Chromium, headless, driven by
// puppeteer-core): a wrong API key gets a clear message; a knowledge cache is
// created by uploading examples/town; "Who directs the Harlow Clinic?" is
// answered "Dr. Mira Osei" with its timings and source documents; replacing
// the clinic's document changes the answer; removing it makes it "unknown";
// the page fits a phone's width. With SCREENSHOTS=DIR, both pages are
// photographed in light and dark (docs/web-*.png).
//
//   node tests/web/browser_test.mjs FRUGAL SOURCE_DIR
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { startFrugalServe } from "../server/start_frugal_serve.mjs";

const [frugal, sourceDir] = process.argv.slice(2);
const screenshots = process.env.SCREENSHOTS;
const kbDir = mkdtempSync(join(tmpdir(), "frugal-web-"));
const { server, port } = await startFrugalServe(frugal, ["--kb-dir", kbDir, "--api-key", "secret"]);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAIL"}: ${what}`);
  if (!ok) failures++;
};

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 760 });
  page.on("dialog", (dialog) => dialog.accept());  // confirm() of removals
  page.on("pageerror", (error) => check(false, `no script error (${error.message})`));
  await page.goto(`http://127.0.0.1:${port}/`);

  // The key: asked for, a wrong one refused in words, the right one kept.
  await page.waitForSelector("#key-dialog[open]", { timeout: 10000 });
  await page.type("#key-input", "not-the-key");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#key-message").textContent.includes("not accepted"),
                             { timeout: 10000 });
  check(true, "a wrong API key is refused with a clear message");
  await page.$eval("#key-input", (input) => { input.value = ""; });
  await page.type("#key-input", "secret");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#model").options.length > 0, { timeout: 10000 });
  check(true, "the right key loads the models");

  // A knowledge cache from the example files, with the prefill's progress.
  await page.click("#nav-knowledge");
  await page.waitForSelector("#create-form", { visible: true });
  await page.type("#kb-name", "town");
  const upload = await page.$("#kb-files");
  const files = readdirSync(join(sourceDir, "examples/town")).map((f) => join(sourceDir, "examples/town", f));
  await upload.uploadFile(...files);
  await page.click("#create");
  await page.waitForFunction(() => document.querySelector("#kb-status").textContent.startsWith("Created town"),
                             { timeout: 60000 });
  await page.waitForSelector('.cache[data-name="town"]', { timeout: 10000 });
  const cacheText = await page.$eval('.cache[data-name="town"]', (card) => card.textContent);
  check(cacheText.includes("Harlow Clinic") && cacheText.includes("5 documents"), "the cache lists its 5 documents");
  if (screenshots) await photograph(page, "knowledge");

  // Ask it.
  const ask = async (expected) => {
    await page.click("#nav-chat");
    await page.click("#new-chat");
    await page.select("#model", "frugal-demo-qa-q8_0@town");
    await page.type("#prompt", "Who directs the Harlow Clinic?");
    await page.keyboard.press("Enter");  // the keyboard alone sends
    await page.waitForFunction(() => {
      const last = [...document.querySelectorAll("#messages > li.assistant")].pop();
      return last && last.querySelector(".stats") && !document.querySelector("#stop").checkVisibility();
    }, { timeout: 30000 });
    const last = await page.$eval("#messages > li.assistant:last-child", (li) => ({
      answer: li.querySelector(".content").textContent.trim(),
      stats: li.querySelector(".stats")?.textContent ?? "",
      sources: li.querySelector(".sources")?.textContent ?? "",
    }));
    check(last.answer.includes(expected), `answered "${last.answer}" (expected "${expected}")`);
    return last;
  };
  const first = await ask("Dr. Mira Osei");
  check(/first token [\d.]+ s/.test(first.stats) && /tokens\/s/.test(first.stats) && /\d+ tokens/.test(first.stats),
        `timings under the answer: ${first.stats}`);
  check(first.sources.includes("Harlow Clinic"), `the source documents are named: ${first.sources}`);
  if (screenshots) await photograph(page, "chat");

  // Replace the clinic's document: the next answer reads the new text.
  await page.click("#nav-knowledge");
  await page.waitForNetworkIdle({ idleTime: 300 });  // the list is drawn anew on arrival
  await page.waitForSelector('.cache[data-name="town"] tr[data-id="harlow-clinic"]');
  await page.click('.cache[data-name="town"] tr[data-id="harlow-clinic"] button:nth-of-type(2)');  // Replace
  await page.waitForSelector("form.document textarea[name=text]");
  await page.$eval("form.document textarea[name=text]", (area) => {
    area.value = "The Harlow Clinic is located in Westbrook. Dr. Lena Park directs the Harlow Clinic. " +
                 "It was founded in 1987. It opens at 8 am.";
  });
  await page.click("form.document button[type=submit]");
  // Saved, and the card drawn anew with what the change said.
  await page.waitForFunction(() => document.querySelector('.cache[data-name="town"] [role=status]')
                                   ?.textContent.startsWith("Replaced"), { timeout: 60000 });
  await ask("Dr. Lena Park");

  // Remove it: the model no longer knows.
  await page.click("#nav-knowledge");
  await page.waitForNetworkIdle({ idleTime: 300 });
  await page.waitForSelector('.cache[data-name="town"] tr[data-id="harlow-clinic"]');
  await page.click('.cache[data-name="town"] tr[data-id="harlow-clinic"] button:nth-of-type(3)');  // Remove
  await page.waitForFunction(() => document.querySelector('.cache[data-name="town"] [role=status]')
                                   ?.textContent.startsWith("Removed"), { timeout: 60000 });
  const remaining = await page.$eval('.cache[data-name="town"]', (card) => ({
    text: card.textContent, clinicRow: !!card.querySelector('tr[data-id="harlow-clinic"]') }));
  check(remaining.text.includes("4 documents") && !remaining.clinicRow, "the clinic's document is gone");
  await ask("unknown");

  // A phone's width: nothing wider than the screen.
  await page.setViewport({ width: 390, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `fits a 390 px wide screen (overflow ${overflow} px)`);
} catch (error) {
  check(false, `the walk-through completed (${error.message})`);
} finally {
  server.kill("SIGTERM");
  rmSync(kbDir, { recursive: true, force: true });
}

// A thinking model: its thinking streams into a folded "Thinking" block,
// apart from the answer.
const thinker = await startFrugalServe(frugal, ["-m", join(sourceDir, "models/frugal-think-q8_0.gguf")]);
try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => check(false, `no script error (${error.message})`));
  await page.goto(`http://127.0.0.1:${thinker.port}/`);
  await page.waitForFunction(() => document.querySelector("#model").options.length > 0, { timeout: 10000 });
  // The knowledge prompt's layout in one message (the model was trained on it).
  await page.$eval("#prompt", (area) => {
    area.value = 'Answer the question using only the documents below. If they do not contain the answer, answer ' +
                 '"unknown".\n\nDocument [c1] Harlow Clinic\nThe Harlow Clinic is in Marketby. It has 12 staff.\n\n' +
                 "Document [c2] Fenwick Clinic\nThe Fenwick Clinic is in Marketby. It has 7 staff.\n\n" +
                 "Question: How many clinics are there in Marketby?";
  });
  await page.focus("#prompt");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const last = [...document.querySelectorAll("#messages > li.assistant")].pop();
    return last && last.querySelector(".stats") && !document.querySelector("#stop").checkVisibility();
  }, { timeout: 60000 });
  const shown = await page.$eval("#messages > li.assistant:last-child", (li) => ({
    thinking: li.querySelector("details.thinking")?.textContent ?? "",
    open: li.querySelector("details.thinking")?.open,
    answer: li.querySelector(".content").textContent,
  }));
  check(shown.thinking.startsWith("Thinking") && shown.thinking.length > 20 && shown.open === false,
        `the thinking is shown apart, folded: ${shown.thinking.slice(0, 60)}...`);
  check(!shown.answer.includes("think>"), `the answer holds no thinking markers: ${shown.answer}`);
} catch (error) {
  check(false, `the thinking model's walk-through completed (${error.message})`);
} finally {
  await browser.close();
  thinker.server.kill("SIGTERM");
}
console.log(failures ? `${failures} failed` : "web page test passed");
process.exit(failures ? 1 : 0);

// Light and dark pictures of a page, for docs/.
async function photograph(page, name) {
  for (const scheme of ["light", "dark"]) {
    await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
    await page.screenshot({ path: join(screenshots, `web-${name}-${scheme}.png`) });
  }
  await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
}
