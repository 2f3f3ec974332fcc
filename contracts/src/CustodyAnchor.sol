// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title CustodyAnchor
/// @notice Permissioned anchoring of kitledger Merkle log checkpoints (tree size, root).
/// @dev The consortium admin is OpenZeppelin's DEFAULT_ADMIN_ROLE: it registers logs to agencies
///      and grants each agency's anchorer role. Only hashes go on chain, never personal data.
contract CustodyAnchor is AccessControl {
    /// @notice The consortium admin role (alias of DEFAULT_ADMIN_ROLE, admin of every role).
    bytes32 public constant CONSORTIUM_ADMIN_ROLE = DEFAULT_ADMIN_ROLE;

    /// @dev Domain tag of per-agency anchorer role ids, so they cannot collide with other roles.
    bytes32 private constant _ANCHORER_TAG = keccak256("kitledger.CustodyAnchor.ANCHORER_ROLE");

    struct Checkpoint {
        uint64 treeSize;
        uint64 blockNumber;
        bytes32 root;
    }

    struct LogRecord {
        bytes32 agencyId;
        Checkpoint latest;
    }

    mapping(bytes32 logId => LogRecord) private _logs;
    mapping(bytes32 logId => mapping(uint64 treeSize => bytes32 root)) private _roots;

    /// @notice The admin address given to the constructor was zero.
    error ZeroAdmin();
    /// @notice A log id or agency id was zero.
    error ZeroId();
    /// @notice The log is already registered (to `agencyId`).
    error LogAlreadyRegistered(bytes32 logId, bytes32 agencyId);
    /// @notice The log is not registered.
    error UnknownLog(bytes32 logId);
    /// @notice `account` lacks the anchorer role of `agencyId`, which owns `logId`.
    error NotAnchorer(bytes32 logId, bytes32 agencyId, address account);
    /// @notice The tree size must grow strictly: `latest` is anchored, `given` was offered.
    error TreeSizeNotIncreasing(bytes32 logId, uint64 latest, uint64 given);
    /// @notice A zero root is never a Merkle root (even the empty tree hashes to non-zero).
    error ZeroRoot(bytes32 logId, uint64 treeSize);
    /// @notice No checkpoint of `logId` was anchored at `treeSize`.
    error NoCheckpoint(bytes32 logId, uint64 treeSize);

    /// @notice A log was registered to an agency.
    event LogRegistered(bytes32 indexed logId, bytes32 indexed agencyId, address indexed admin);
    /// @notice A checkpoint of a log was anchored.
    event Anchored(
        bytes32 indexed logId, uint64 indexed treeSize, bytes32 root, address indexed anchorer
    );

    /// @notice Deploys the contract with `admin` as the consortium admin.
    /// @param admin The first consortium admin.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice The role id of the anchorers of `agencyId`.
    /// @param agencyId The agency.
    /// @return The role id to pass to grantRole / revokeRole / hasRole.
    function anchorerRole(bytes32 agencyId) public pure returns (bytes32) {
        return keccak256(abi.encode(_ANCHORER_TAG, agencyId));
    }

    /// @notice Registers `logId` to `agencyId`; only the consortium admin may.
    /// @param logId The log (its public key id hash).
    /// @param agencyId The agency that owns the log.
    function registerLog(bytes32 logId, bytes32 agencyId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (logId == bytes32(0) || agencyId == bytes32(0)) revert ZeroId();
        bytes32 owner = _logs[logId].agencyId;
        if (owner != bytes32(0)) revert LogAlreadyRegistered(logId, owner);
        _logs[logId].agencyId = agencyId;
        emit LogRegistered(logId, agencyId, msg.sender);
    }

    /// @notice Anchors the checkpoint (`treeSize`, `root`) of `logId`.
    /// @dev Only an anchorer of the log's agency; the tree size must strictly increase.
    /// @param logId The registered log.
    /// @param treeSize The number of leaves the root commits to.
    /// @param root The Merkle tree head at `treeSize`.
    function anchor(bytes32 logId, uint64 treeSize, bytes32 root) external {
        LogRecord storage log = _logs[logId];
        bytes32 agencyId = log.agencyId;
        if (agencyId == bytes32(0)) revert UnknownLog(logId);
        if (!hasRole(anchorerRole(agencyId), msg.sender)) {
            revert NotAnchorer(logId, agencyId, msg.sender);
        }
        uint64 latest = log.latest.treeSize;
        if (treeSize <= latest) revert TreeSizeNotIncreasing(logId, latest, treeSize);
        if (root == bytes32(0)) revert ZeroRoot(logId, treeSize);
        log.latest = Checkpoint(treeSize, uint64(block.number), root);
        _roots[logId][treeSize] = root;
        emit Anchored(logId, treeSize, root, msg.sender);
    }

    /// @notice The agency that owns `logId` (zero if unregistered).
    /// @param logId The log.
    /// @return The agency id.
    function agencyOf(bytes32 logId) external view returns (bytes32) {
        return _logs[logId].agencyId;
    }

    /// @notice The latest anchored checkpoint of `logId` (all zero if none yet).
    /// @param logId The registered log.
    /// @return treeSize The tree size.
    /// @return root The root at that size.
    /// @return blockNumber The block that anchored it.
    function latestCheckpoint(bytes32 logId)
        external
        view
        returns (uint64 treeSize, bytes32 root, uint64 blockNumber)
    {
        LogRecord storage log = _logs[logId];
        if (log.agencyId == bytes32(0)) revert UnknownLog(logId);
        Checkpoint storage cp = log.latest;
        return (cp.treeSize, cp.root, cp.blockNumber);
    }

    /// @notice The root anchored for `logId` at exactly `treeSize`.
    /// @param logId The registered log.
    /// @param treeSize An anchored tree size.
    /// @return The anchored root.
    function rootAt(bytes32 logId, uint64 treeSize) external view returns (bytes32) {
        if (_logs[logId].agencyId == bytes32(0)) revert UnknownLog(logId);
        bytes32 root = _roots[logId][treeSize];
        if (root == bytes32(0)) revert NoCheckpoint(logId, treeSize);
        return root;
    }
}
