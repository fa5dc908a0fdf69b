#!/usr/bin/env node
// Installed entry point: runs the built CLI. (From the repo root, `pnpm polymoe`
// runs the TypeScript sources directly.)
import { main } from "../dist/index.js";

process.exitCode = await main(process.argv.slice(2));
