// A stateful example: collects points and reports their centroid.
import type { PointsHandlers } from "../../generated/points/index.js";

/** Creates handlers with their own point set (one per server process). */
export function createPointsHandlers(): PointsHandlers {
  let count = 0;
  let sumX = 0;
  let sumY = 0;
  return {
    addPoint({ x, y }) {
      count++;
      sumX += x;
      sumY += y;
      return { count, centroid: { x: sumX / count, y: sumY / count } };
    },
  };
}
