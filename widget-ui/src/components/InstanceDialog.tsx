// The large image of one instance with its metadata; Escape closes it.
import { useEffect, useId, useRef } from "react";
import { REGION_INFO } from "./VennDiagram";
import { InstanceImage, NO_IMAGES_NOTICE } from "./InstanceImage";
import type { InstanceItem } from "../types";
import { fmtLabel, fmtVerdict } from "../format";

export interface InstanceDialogProps {
  item: InstanceItem;
  /** Null when the server has no image callback: a notice instead of the image. */
  imageUrl: string | null;
  onClose: () => void;
}

export function InstanceDialog({ item, imageUrl, onClose }: InstanceDialogProps) {
  const titleId = useId();
  const closeRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    closeRef.current?.focus();
  }, []);
  return (
    <div className="bcml-dialog-backdrop" onClick={onClose}>
      <div
        className="bcml-dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        tabIndex={-1}
        onClick={(e) => e.stopPropagation()}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            onClose();
          } else if (e.key === "Tab") {
            // The close button is the only control: keep focus inside.
            e.preventDefault();
            closeRef.current?.focus();
          }
        }}
      >
        <div className="bcml-dialog-head">
          <h4 className="bcml-dialog-title" id={titleId}>
            Instance {item.instance_id}
          </h4>
          <button ref={closeRef} type="button" className="bcml-button" onClick={onClose}>
            Close
          </button>
        </div>
        <div className="bcml-dialog-body">
          {imageUrl === null ? (
            <p className="bcml-notice bcml-dialog-notice" role="note">
              {NO_IMAGES_NOTICE}
            </p>
          ) : (
            <InstanceImage
              className="bcml-dialog-image"
              src={imageUrl}
              alt={`Instance ${item.instance_id}: ${item.metadata}`}
            />
          )}
          <dl className="bcml-dl bcml-dialog-dl">
            <div className="bcml-dl-row">
              <dt>Metadata</dt>
              <dd>{item.metadata || "none"}</dd>
            </div>
            <div className="bcml-dl-row">
              <dt>Ground truth</dt>
              <dd>{fmtLabel(item.ground_truth)}</dd>
            </div>
            <div className="bcml-dl-row">
              <dt>h1 prediction</dt>
              <dd>{fmtVerdict(item.h1_prediction, item.ground_truth)}</dd>
            </div>
            <div className="bcml-dl-row">
              <dt>h2 prediction</dt>
              <dd>{fmtVerdict(item.h2_prediction, item.ground_truth)}</dd>
            </div>
            <div className="bcml-dl-row">
              <dt>Region</dt>
              <dd>
                {REGION_INFO[item.region]?.title ?? item.region}
                {REGION_INFO[item.region] ? ` (${REGION_INFO[item.region].hint})` : ""}
              </dd>
            </div>
          </dl>
        </div>
      </div>
    </div>
  );
}
