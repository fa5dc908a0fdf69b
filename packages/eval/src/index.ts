// @polymoe/eval: translate with a trained model and score it.
export { bleuTokenizerFor, type TranslateOptions, translate } from "./translate.js";
