// Builds the client into dist/: dist/assets/main-<hash>.{js,css}, dist/index.html naming them, and
// the files of public/ as they are.
// `node build.mjs --check` builds into a temporary directory and fails when dist/ differs, which
// is how .ci/run keeps the committed bundle (embedded by the server) equal to the sources; it
// also regenerates the wire types (gen.mjs) and fails when src/generated/ differs.
import { build } from "esbuild";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { tmpdir } from "node:os";
import { generate } from "./gen.mjs";

const here = import.meta.dirname;
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "boardroom-web-")) : join(here, "dist");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
  absWorkingDir: here,
});
const outputs = Object.keys(result.metafile.outputs).map((p) => relative(out, join(here, p)));
const pick = (ext) => {
  const found = outputs.filter((p) => p.endsWith(ext));
  if (found.length !== 1) throw new Error(`expected one ${ext} output, got ${found.join(", ")}`);
  return found[0];
};
const page = readFileSync(join(here, "index.html"), "utf8")
  .replace("{{js}}", pick(".js"))
  .replace("{{css}}", pick(".css"));
writeFileSync(join(out, "index.html"), page);
// Files served as they are, at the root (the favicon): not hashed, so revalidated.
cpSync(join(here, "public"), out, { recursive: true });

if (check) {
  // Before the bundle: stale types are the cause, a stale bundle only the consequence.
  const stale = Object.entries(await generate()).filter(
    ([path, text]) => !statSync(join(here, path), { throwIfNoEntry: false })?.isFile() || readFileSync(join(here, path), "utf8") !== text,
  );
  if (stale.length > 0) {
    rmSync(out, { recursive: true, force: true });
    console.error(
      `web/${stale.map(([path]) => path).join(", web/")}: stale, not what docs/openapi.json and docs/protocol.schema.json ` +
        "generate; run `npm run gen` in web/, then `npm run build`, and commit src/generated/ and dist/",
    );
    process.exit(1);
  }
  const files = (dir) =>
    readdirSync(dir, { recursive: true })
      .filter((p) => statSync(join(dir, p)).isFile())
      .sort();
  const committed = join(here, "dist");
  const want = files(out);
  const have = files(committed);
  const differ =
    JSON.stringify(want) !== JSON.stringify(have) ||
    want.some((p) => !readFileSync(join(out, p)).equals(readFileSync(join(committed, p))));
  rmSync(out, { recursive: true, force: true });
  if (differ) {
    console.error("web/dist is not the build of web/src: run `npm run build` in web/ and commit dist/");
    process.exit(1);
  }
  console.log("web/dist is up to date");
}
