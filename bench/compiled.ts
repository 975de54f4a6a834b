import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Compiles src/ to plain JavaScript in a temp dir (dist/ may be stale, and others may be
 * editing src/), laid out like the package: dist/, migrations/, node_modules -> the repo's.
 * That is what `npm start` runs, without tsx's loader in the process. Returns the cli.js path
 * and a cleanup, or null when the compiler fails.
 */
export function buildCompiledCli(): { cli: string; cleanup(): void } | null {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-build-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist'), '--noCheck', '--declaration', 'false', '--sourceMap', 'false'],
      { cwd: ROOT, stdio: 'pipe' },
    );
    cpSync(join(ROOT, 'migrations'), join(dir, 'migrations'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    return { cli: join(dir, 'dist/cli.js'), cleanup };
  } catch (err) {
    process.stderr.write(`could not compile src/ for the idle measurement: ${(err as { stdout?: Buffer }).stdout?.toString() ?? err}\n`);
    cleanup();
    return null;
  }
}
