import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

import { findBackend, getBackend, ready, setBackend } from "@tensorflow/tfjs-core";

import { loadAddon } from "./addon.js";
import { NATIVE_BACKEND_NAME } from "./backend.js";
import { KernelError } from "./errors.js";
import { ensureGradients, registerNativeBackend } from "./register.js";

export const BACKEND_CHOICES = ["auto", "native", "cpu", "wasm", "tensorflow"] as const;
/**
 * - `auto`: tfjs-node-gpu / tfjs-node when installed, else native, else cpu (with one warning).
 * - `native`: PolyMoE's CPU backend (N-API over OpenBLAS/oneDNN).
 * - `cpu`: the stock tfjs cpu backend (pure JS).
 * - `wasm`: @tensorflow/tfjs-backend-wasm, if installed.
 * - `tensorflow`: @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (libtensorflow; CUDA with -gpu).
 */
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** What useBackend picked, and why. */
export interface BackendReport {
  requested: BackendChoice;
  /** tfjs backend name now active. */
  backend: string;
  /** For native: threads, BLAS and SIMD level. */
  detail: string;
  /** Why a preferred backend was passed over (auto only). */
  fallbackReason?: string;
}

let warnedFallback = false;

function warnOnce(message: string): void {
  if (warnedFallback) return;
  warnedFallback = true;
  process.emitWarning(message, { code: "POLYMOE_NATIVE_UNAVAILABLE" });
}

/** Quiet the cpu backend's "install tfjs-node" hint: PolyMoE already explained itself. */
function quietCpuHint(): void {
  const cpu = findBackend("cpu") as unknown as { firstUse?: boolean } | undefined;
  if (cpu && "firstUse" in cpu) cpu.firstUse = false;
}

/** Whether a package resolves from this package (optional peers) or from the working directory. */
function installed(pkg: string): boolean {
  for (const from of [import.meta.url, pathToFileURL(`${process.cwd()}/`).href]) {
    try {
      createRequire(from).resolve(pkg);
      return true;
    } catch {
      // not resolvable from here
    }
  }
  return false;
}

async function tryTensorflow(): Promise<string | null> {
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    if (!installed(pkg)) continue;
    try {
      await import(pkg);
      return pkg;
    } catch (e) {
      throw new KernelError(
        "BACKEND_UNAVAILABLE",
        `${pkg} is installed but failed to load: ${(e as Error).message}`,
      );
    }
  }
  return null;
}

async function activate(name: string): Promise<void> {
  const ok = await setBackend(name);
  if (!ok) throw new KernelError("BACKEND_UNAVAILABLE", `tfjs could not initialise the '${name}' backend`);
  await ready();
}

function nativeDetail(): string {
  const { addon } = loadAddon();
  if (!addon) return "";
  const i = addon.info();
  return `${i.threads} thread(s), ${i.blas} (${i.blasConfig}), ${i.simd}`;
}

/**
 * Selects the tfjs backend for this process, once, before building models.
 * A missing addon or BLAS never crashes `auto`: it falls back to the stock cpu
 * backend and warns once, saying why. Explicit choices fail with a clear error.
 */
export async function useBackend(
  choice: BackendChoice = (process.env.POLYMOE_BACKEND as BackendChoice | undefined) ?? "auto",
): Promise<BackendReport> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new KernelError(
      "INVALID_ARGUMENT",
      `unknown backend '${choice}'; valid: ${BACKEND_CHOICES.join(", ")} (set with POLYMOE_BACKEND or --backend)`,
    );
  }
  ensureGradients();
  switch (choice) {
    case "tensorflow": {
      const pkg = await tryTensorflow();
      if (!pkg) {
        throw new KernelError(
          "BACKEND_UNAVAILABLE",
          "backend 'tensorflow' needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node: pnpm add one of them",
        );
      }
      await activate("tensorflow");
      return { requested: choice, backend: getBackend(), detail: pkg };
    }
    case "wasm": {
      try {
        await import("@tensorflow/tfjs-backend-wasm");
      } catch (e) {
        throw new KernelError(
          "BACKEND_UNAVAILABLE",
          `backend 'wasm' needs @tensorflow/tfjs-backend-wasm (pnpm add it): ${(e as Error).message}`,
        );
      }
      await activate("wasm");
      return { requested: choice, backend: getBackend(), detail: "@tensorflow/tfjs-backend-wasm" };
    }
    case "cpu":
      await activate("cpu");
      quietCpuHint();
      return { requested: choice, backend: "cpu", detail: "stock tfjs cpu backend (pure JS)" };
    case "native": {
      const r = registerNativeBackend();
      if (!r.ok) throw new KernelError("ADDON_UNAVAILABLE", `backend 'native' is unavailable: ${r.reason}`);
      await activate(NATIVE_BACKEND_NAME);
      return { requested: choice, backend: NATIVE_BACKEND_NAME, detail: nativeDetail() };
    }
    case "auto": {
      const pkg = await tryTensorflow();
      if (pkg) {
        await activate("tensorflow");
        return { requested: choice, backend: getBackend(), detail: pkg };
      }
      const r = registerNativeBackend();
      if (r.ok) {
        await activate(NATIVE_BACKEND_NAME);
        return { requested: choice, backend: NATIVE_BACKEND_NAME, detail: nativeDetail() };
      }
      warnOnce(`PolyMoE is using the stock tfjs cpu backend, which is much slower: ${r.reason}`);
      await activate("cpu");
      quietCpuHint();
      return {
        requested: choice,
        backend: "cpu",
        detail: "stock tfjs cpu backend (pure JS)",
        fallbackReason: r.reason,
      };
    }
  }
}
