// The tensor backend of a rank (and of the test process): polymoe-native when
// the addon loads, else tfjs's cpu backend — the same choice everywhere, so
// ranks and references compute alike.
import { setupTestBackends } from "@polymoe/kernels/testing";
import * as tf from "@tensorflow/tfjs-core";

export async function backendReady(): Promise<string> {
  setupTestBackends();
  await tf.ready();
  return tf.getBackend();
}
