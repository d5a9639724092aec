// Entry point of the bundle: sets window.BackwardCompatibilityML once.
import "./styles.css";
import { createRoot, type Root } from "react-dom/client";
import { ApiClient, type PageLocation } from "./api";
import { App } from "./components/App";
import type { WidgetConfig } from "./types";

export interface MountedWidget {
  unmount(): void;
}

export interface MountOptions {
  /** Overrides for tests: where the page is, and the poll intervals (while a sweep runs, while none does). */
  location?: PageLocation;
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  pollIntervalMs?: number;
  idlePollIntervalMs?: number;
}

export interface BackwardCompatibilityMLGlobal {
  mountWidget(element: HTMLElement, config: WidgetConfig | string, options?: MountOptions): MountedWidget;
}

declare global {
  interface Window {
    BackwardCompatibilityML?: BackwardCompatibilityMLGlobal;
  }
}

const roots = new WeakMap<HTMLElement, Root>();
let mounted = 0;

export function mountWidget(element: HTMLElement, config: WidgetConfig | string, options: MountOptions = {}): MountedWidget {
  if (!element || typeof element.appendChild !== "function") {
    throw new Error("BackwardCompatibilityML.mountWidget: the element to mount into was not found.");
  }
  const parsed: WidgetConfig = typeof config === "string" ? JSON.parse(config) : (config ?? {});
  element.classList.add("bcml-widget");
  // Mounting again into the same element replaces the earlier widget.
  roots.get(element)?.unmount();
  mounted += 1;
  // A distinct prefix keeps React's generated ids unique across widgets.
  const root = createRoot(element, { identifierPrefix: `bcml${mounted}-` });
  roots.set(element, root);
  const api = new ApiClient(parsed, options.location ?? window.location, { fetch: options.fetch });
  root.render(<App api={api} pollIntervalMs={options.pollIntervalMs} idlePollIntervalMs={options.idlePollIntervalMs} />);
  return {
    unmount() {
      if (roots.get(element) === root) roots.delete(element);
      root.unmount();
    },
  };
}

if (typeof window !== "undefined" && !window.BackwardCompatibilityML) {
  window.BackwardCompatibilityML = { mountWidget };
}
