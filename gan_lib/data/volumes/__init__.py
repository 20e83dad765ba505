"""3-D scans as training images: `readers` turns a NIfTI file or a DICOM series into voxels in one
orientation (nibabel, pydicom), `slices` finds a raw folder's volumes and their masks and cuts each
into labelled axial slices, and `phantom` writes synthetic volumes for offline runs and tests."""
