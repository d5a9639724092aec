import { afterEach } from "vitest";
import { cleanup } from "@testing-library/react";

// React 19 act() support in a non-Jest environment.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

afterEach(() => {
  cleanup();
  document.body.innerHTML = "";
});
