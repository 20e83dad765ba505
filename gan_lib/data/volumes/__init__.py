"""3-D scans as training images: `readers` turns a NIfTI file or a DICOM series into voxels in one
orientation (nibabel, pydicom), `finding` finds a raw folder's volumes, their masks and cases,
`slices` cuts each into labelled axial slices, and `phantom` writes synthetic volumes for offline
runs and tests."""
