// Development entry point (`pnpm polymoe` from the repo root runs this with tsx).
import { main } from "./index.js";

process.exitCode = await main(process.argv.slice(2));
