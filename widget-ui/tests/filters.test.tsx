import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { Filters } from "../src/components/Filters";
import { DEFAULT_FILTERS } from "../src/state";
import { FAMILIES } from "./fixtures";

describe("Filters", () => {
  it("has labelled checkboxes and lambda_c inputs", () => {
    const onChange = vi.fn();
    render(<Filters filters={DEFAULT_FILTERS} families={FAMILIES} onChange={onChange} shown={3} total={8} />);
    for (const name of ["Training", "Testing", "New Error", "Strict Imitation"]) {
      const box = screen.getByRole("checkbox", { name }) as HTMLInputElement;
      expect(box.checked).toBe(true);
    }
    fireEvent.click(screen.getByRole("checkbox", { name: "Strict Imitation" }));
    expect(onChange).toHaveBeenLastCalledWith({ hiddenFamilies: ["strict-imitation"] });
    fireEvent.click(screen.getByRole("checkbox", { name: "Training" }));
    expect(onChange).toHaveBeenLastCalledWith({ training: false });
    const min = screen.getByLabelText("Minimum lambda_c") as HTMLInputElement;
    const max = screen.getByLabelText("Maximum lambda_c") as HTMLInputElement;
    expect(min.value).toBe("0");
    expect(max.value).toBe("1");
    fireEvent.change(min, { target: { value: "0.3" } });
    expect(onChange).toHaveBeenLastCalledWith({ lambdaMin: "0.3" });
    fireEvent.change(max, { target: { value: "0.5" } });
    expect(onChange).toHaveBeenLastCalledWith({ lambdaMax: "0.5" });
    expect(screen.getByText("3 of 8 datapoints shown")).toBeTruthy();
  });
});
